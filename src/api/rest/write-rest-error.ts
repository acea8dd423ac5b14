import type { EmbedderError } from "../../domain/errors.js";
import { ERROR_TABLE, retryAfterSeconds } from "../error-table.js";
import { sendJson } from "../node-types.js";
import type { NodeResponse } from "../node-types.js";

/**
 * Answers a REST request with the error envelope of DESIGN section 4:
 * `{"error": {"code": "<reason>", "message", "details", "request_id"}}`, the
 * HTTP status from ERROR_TABLE, and `Retry-After` (seconds) when the error is
 * worth retrying later.
 */
export function writeRestError(response: NodeResponse, error: EmbedderError, requestId: string): void {
  const retryAfter = retryAfterSeconds(error);
  sendJson(
    response,
    ERROR_TABLE[error.reason].httpStatus,
    retryAfter === undefined ? {} : { "retry-after": String(retryAfter) },
    { error: { code: error.reason, message: error.message, details: error.details, request_id: requestId } },
  );
}
