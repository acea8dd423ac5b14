import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { EmbedderError } from "../../domain/errors.js";
import { ERROR_TABLE, retryAfterSeconds } from "../error-table.js";
import { REQUEST_ID_HEADER } from "../request-context.js";
import { restErrorEnvelope } from "../rest/write-rest-error.js";

/**
 * Answers a refused upgrade request on its raw socket (no WebSocket was made, so no HTTP
 * response object exists): the error table's HTTP status, `retry-after` when the error has
 * one, the request id header and the REST error envelope, then closes the socket, so a
 * refused client reads the same error as a REST client would.
 */
export function refuseUpgrade(socket: Duplex, error: EmbedderError, requestId: string): void {
  const body = JSON.stringify(restErrorEnvelope(error, requestId));
  const status = ERROR_TABLE[error.reason].httpStatus;
  const retryAfter = retryAfterSeconds(error);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n` +
      (retryAfter === undefined ? "" : `retry-after: ${retryAfter}\r\n`) +
      `connection: close\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `${REQUEST_ID_HEADER}: ${requestId}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
