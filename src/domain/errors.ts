/**
 * Every failure reason of the service (docs/ERRORS.md). The one table in
 * `src/domain/error-table.ts` turns a reason into a Connect code and an HTTP
 * status and says whether it is retryable; nothing else decides a status.
 */
export const ERROR_REASONS = [
  "EMPTY_INPUT",
  "TOO_MANY_INPUTS",
  "INVALID_DIMENSIONS",
  "INVALID_ARGUMENT",
  "INPUT_TOO_LONG",
  "PAYLOAD_TOO_LARGE",
  "UNSUPPORTED_MEDIA_TYPE",
  "UNAUTHENTICATED",
  "FORBIDDEN",
  "ORIGIN_NOT_ALLOWED",
  "MISDIRECTED_REQUEST",
  "UNKNOWN_MODEL",
  "JOB_NOT_FOUND",
  "ROUTE_NOT_FOUND",
  "RATE_LIMITED",
  "OVERLOADED",
  "TOO_MANY_STREAMS",
  "CANCELLED",
  "NOT_IMPLEMENTED",
  "MODEL_NOT_READY",
  "WORKER_FAILED",
  "UPSTREAM_UNAVAILABLE",
  "SHUTTING_DOWN",
  "UPSTREAM_BAD_RESPONSE",
  "DEADLINE_EXCEEDED",
  "DATA_DAMAGED",
  "INTERNAL",
] as const;

/** A failure reason of the service (docs/ERRORS.md). */
export type ErrorReason = (typeof ERROR_REASONS)[number];

/** Structured facts about a failure, safe to show to the client (no secrets, no paths). */
export type ErrorDetails = Record<string, string | number | boolean | number[] | string[]>;

/**
 * The service's one domain error. `message` is written for the client; the
 * original error, if any, stays in `cause` for logs only. `retryAfterMs` is set
 * for reasons a client may retry (OVERLOADED, RATE_LIMITED, ...).
 */
export class EmbedderError extends Error {
  readonly reason: ErrorReason;
  readonly details: ErrorDetails;
  readonly retryAfterMs?: number;

  constructor(reason: ErrorReason, message: string, options: { details?: ErrorDetails; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "EmbedderError";
    this.reason = reason;
    this.details = options.details ?? {};
    this.retryAfterMs = options.retryAfterMs;
  }

  /**
   * Wraps anything thrown into an EmbedderError. An EmbedderError passes through;
   * an AbortError becomes CANCELLED; anything else becomes INTERNAL with a generic
   * message (the original is kept as `cause`, never shown).
   */
  static from(error: unknown): EmbedderError {
    if (error instanceof EmbedderError) return error;
    if (error instanceof Error && error.name === "AbortError") {
      return new EmbedderError("CANCELLED", "the request was cancelled", { cause: error });
    }
    return new EmbedderError("INTERNAL", "internal error", { cause: error });
  }
}
