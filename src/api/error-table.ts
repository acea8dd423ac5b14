import { ERROR_TABLE } from "../domain/error-table.js";
import type { EmbedderError } from "../domain/errors.js";

/**
 * The error table (code, HTTP status, retryable) as every transport reads it;
 * it lives in the domain (src/domain/error-table.ts) so that stages may read
 * the `retryable` column without importing the transport folder.
 */
export { ERROR_TABLE, type ErrorMapping } from "../domain/error-table.js";

/** The ErrorInfo `domain` of every error this service raises. */
export const ERROR_DOMAIN = "sutra.embedder.v1";

/** Wait a client is told for a retryable 429 (OVERLOADED, RATE_LIMITED, TOO_MANY_STREAMS) when the error names none. */
export const DEFAULT_RETRY_AFTER_MS = 1000;

/**
 * Seconds a client should wait before retrying, as `Retry-After` and the
 * `retry-after` metadata carry them: the error's `retryAfterMs` rounded up (a
 * client must never retry early), or DEFAULT_RETRY_AFTER_MS for a retryable
 * reason answered HTTP 429 (a refusal for load or rate, which always tells the
 * client when to come back). Undefined for errors that name no wait and are
 * not such refusals: other retryable reasons (WORKER_FAILED, ...) carry a wait
 * only when the stage that raised them knows one.
 */
export function retryAfterSeconds(error: EmbedderError): number | undefined {
  const row = ERROR_TABLE[error.reason];
  const throttled = row.retryable && row.httpStatus === 429;
  const milliseconds = error.retryAfterMs ?? (throttled ? DEFAULT_RETRY_AFTER_MS : undefined);
  return milliseconds === undefined ? undefined : Math.max(1, Math.ceil(milliseconds / 1000));
}
