import type { IncomingHttpHeaders } from "node:http";
import { EmbedderError } from "../../domain/errors.js";
import { limitBody, parseContentLength } from "../limit-body.js";

/** A request body as Node's HTTP/1.1 and HTTP/2 servers hand it over. */
export interface BodyStream extends AsyncIterable<Buffer> {
  headers: IncomingHttpHeaders;
}

/**
 * Reads a whole request body of at most `maxBytes`, failing with
 * PAYLOAD_TOO_LARGE (see limitBody) at once when `content-length` already says
 * it is too large, else as soon as the running count passes the limit. A body
 * that breaks off (the client's connection failed) is CANCELLED, not a server
 * fault.
 */
export async function readBody(request: BodyStream, maxBytes: number): Promise<Buffer> {
  const declaredLength = parseContentLength(request.headers["content-length"]);
  const chunks: Uint8Array[] = [];
  try {
    for await (const chunk of limitBody(request, { maxBytes, enveloped: false, declaredLength })) {
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof EmbedderError) throw error;
    throw new EmbedderError("CANCELLED", "the client went away while sending the request", { cause: error });
  }
  return Buffer.concat(chunks);
}
