import type { JsonValue } from "@bufbuild/protobuf";
import { EmbedderError } from "../../domain/errors.js";
import { readBody, type BodyStream } from "./read-body.js";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads a JSON request body of at most `maxBytes` (PAYLOAD_TOO_LARGE beyond,
 * see readBody). Undefined for an empty body; INVALID_ARGUMENT for bytes that
 * are not UTF-8 (RFC 8259 section 8.1: JSON exchanged between systems is
 * UTF-8; replacing bad bytes would embed text the client never sent) or text
 * that is not JSON.
 */
export async function readJsonBody(request: BodyStream, maxBytes: number): Promise<JsonValue | undefined> {
  const bytes = await readBody(request, maxBytes);
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch (error) {
    throw new EmbedderError("INVALID_ARGUMENT", "the request body is not valid UTF-8", { cause: error });
  }
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text) as JsonValue;
  } catch (error) {
    throw new EmbedderError("INVALID_ARGUMENT", `the request body is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
