import type { EmbedderError } from "../../domain/errors.js";
import { ERROR_TABLE, retryAfterSeconds } from "../error-table.js";
import { sendJson } from "../node-types.js";
import type { NodeResponse } from "../node-types.js";

/**
 * OpenAI's error `type` for an HTTP status, so the OpenAI SDKs classify our
 * errors as they classify OpenAI's.
 */
export function openAiErrorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 403 || status === 421) return "permission_error";
  if (status === 429) return "rate_limit_error";
  if (status === 499) return "request_cancelled";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

/**
 * Answers an HTTP request with the error envelope of docs/ERRORS.md,
 * `{"error": {"code": "<reason>", "message", "details", "request_id"}}`, which
 * also carries OpenAI's `type` (from the status) and `param` (the offending
 * field, or null), so one envelope serves the REST routes and the OpenAI
 * dialect alike; the HTTP status from ERROR_TABLE; and `Retry-After`
 * (seconds) when the error is worth retrying later.
 */
export function writeRestError(response: NodeResponse, error: EmbedderError, requestId: string): void {
  const retryAfter = retryAfterSeconds(error);
  sendJson(response, ERROR_TABLE[error.reason].httpStatus, retryAfter === undefined ? {} : { "retry-after": String(retryAfter) }, restErrorEnvelope(error, requestId));
}

/**
 * The error envelope itself, for answers that are not a plain REST response:
 * the last record of an NDJSON or SSE stream, a refused WebSocket upgrade.
 */
export function restErrorEnvelope(error: EmbedderError, requestId: string) {
  const field = error.details.field;
  return {
    error: {
      code: error.reason,
      message: error.message,
      type: openAiErrorType(ERROR_TABLE[error.reason].httpStatus),
      param: typeof field === "string" ? field : null,
      details: error.details,
      request_id: requestId,
    },
  };
}
