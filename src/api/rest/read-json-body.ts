import type { JsonValue } from "@bufbuild/protobuf";
import { EmbedderError } from "../../domain/errors.js";
import { checkWellFormedJson, decodeUtf8Marked } from "../well-formed-text.js";
import { readBody, type BodyStream } from "./read-body.js";

/**
 * Reads a JSON request body of at most `maxBytes` (PAYLOAD_TOO_LARGE beyond,
 * see readBody). Undefined for an empty body; INVALID_ARGUMENT for text that
 * is not JSON, and for a string anywhere in it that is not well-formed: bytes
 * that are not UTF-8 (RFC 8259 section 8.1: JSON exchanged between systems is
 * UTF-8; replacing bad bytes would embed text the client never sent) or a
 * lone surrogate spelled as an escape. Both are named by field and index
 * (checkWellFormedJson), as every other transport names them.
 */
export async function readJsonBody(request: BodyStream, maxBytes: number): Promise<JsonValue | undefined> {
  const text = decodeUtf8Marked(await readBody(request, maxBytes));
  if (text.trim() === "") return undefined;
  let json: JsonValue;
  try {
    json = JSON.parse(text) as JsonValue;
  } catch (error) {
    throw new EmbedderError("INVALID_ARGUMENT", `the request body is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  checkWellFormedJson(json);
  return json;
}
