import type { JsonValue } from "@bufbuild/protobuf";
import { EmbedderError } from "../../domain/errors.js";
import { readBody } from "./read-body.js";
import { readJsonBody } from "./read-json-body.js";
import type { BodyStream } from "./read-body.js";

/** `application/json`, with any parameters (`charset=utf-8`), in any case. */
const JSON_CONTENT_TYPE = /^\s*application\/json\s*(;|$)/i;

/**
 * Reads the JSON body of a REST, OpenAI or seed route. The body is read only
 * as `application/json` (readJsonBody: the body limit, strict UTF-8, JSON);
 * any other content type is UNSUPPORTED_MEDIA_TYPE before a byte is read, so
 * what a web page may send cross-site without a CORS preflight (`text/plain`,
 * forms, multipart) is never parsed as JSON. A request without a content type
 * is taken only with an empty body (undefined, as an empty JSON body): a
 * body-less POST such as a download poll needs none, and a body without a
 * type is UNSUPPORTED_MEDIA_TYPE.
 */
export async function readJsonRequest(request: BodyStream, maxBytes: number): Promise<JsonValue | undefined> {
  const contentType = request.headers["content-type"];
  if (contentType !== undefined && JSON_CONTENT_TYPE.test(contentType)) return readJsonBody(request, maxBytes);
  if (contentType === undefined && (await readBody(request, maxBytes)).byteLength === 0) return undefined;
  throw new EmbedderError(
    "UNSUPPORTED_MEDIA_TYPE",
    contentType === undefined ? "the request has a body but no content type; send it as application/json" : "the request body must be application/json",
    { details: { content_type: (contentType ?? "").slice(0, 100) } },
  );
}
