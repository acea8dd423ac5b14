import { Code } from "@connectrpc/connect";
import type { EmbedderError, ErrorReason } from "../domain/errors.js";

/** How one failure reason looks on the wire. */
export interface ErrorMapping {
  /** gRPC / Connect status code. */
  code: Code;
  /** HTTP status of the REST (and OpenAI dialect) answer. */
  httpStatus: number;
}

/**
 * The one table that turns a domain failure reason into a gRPC/Connect code and
 * an HTTP status. Every transport asks this table; nothing else decides a
 * status. docs/ERRORS.md lists the same rows and a unit test keeps the two in
 * step.
 */
export const ERROR_TABLE: { readonly [R in ErrorReason]: ErrorMapping } = {
  EMPTY_INPUT: { code: Code.InvalidArgument, httpStatus: 400 },
  TOO_MANY_INPUTS: { code: Code.InvalidArgument, httpStatus: 400 },
  INVALID_DIMENSIONS: { code: Code.InvalidArgument, httpStatus: 400 },
  INVALID_ARGUMENT: { code: Code.InvalidArgument, httpStatus: 400 },
  INPUT_TOO_LONG: { code: Code.InvalidArgument, httpStatus: 400 },
  PAYLOAD_TOO_LARGE: { code: Code.ResourceExhausted, httpStatus: 413 },
  UNSUPPORTED_MEDIA_TYPE: { code: Code.InvalidArgument, httpStatus: 415 },
  UNAUTHENTICATED: { code: Code.Unauthenticated, httpStatus: 401 },
  FORBIDDEN: { code: Code.PermissionDenied, httpStatus: 403 },
  ORIGIN_NOT_ALLOWED: { code: Code.PermissionDenied, httpStatus: 403 },
  MISDIRECTED_REQUEST: { code: Code.PermissionDenied, httpStatus: 421 },
  UNKNOWN_MODEL: { code: Code.NotFound, httpStatus: 404 },
  JOB_NOT_FOUND: { code: Code.NotFound, httpStatus: 404 },
  ROUTE_NOT_FOUND: { code: Code.NotFound, httpStatus: 404 },
  RATE_LIMITED: { code: Code.ResourceExhausted, httpStatus: 429 },
  OVERLOADED: { code: Code.ResourceExhausted, httpStatus: 429 },
  TOO_MANY_STREAMS: { code: Code.ResourceExhausted, httpStatus: 429 },
  CANCELLED: { code: Code.Canceled, httpStatus: 499 },
  NOT_IMPLEMENTED: { code: Code.Unimplemented, httpStatus: 501 },
  MODEL_NOT_READY: { code: Code.Unavailable, httpStatus: 503 },
  WORKER_FAILED: { code: Code.Unavailable, httpStatus: 503 },
  UPSTREAM_UNAVAILABLE: { code: Code.Unavailable, httpStatus: 503 },
  SHUTTING_DOWN: { code: Code.Unavailable, httpStatus: 503 },
  UPSTREAM_BAD_RESPONSE: { code: Code.Unavailable, httpStatus: 502 },
  DEADLINE_EXCEEDED: { code: Code.DeadlineExceeded, httpStatus: 504 },
  DATA_DAMAGED: { code: Code.DataLoss, httpStatus: 500 },
  INTERNAL: { code: Code.Internal, httpStatus: 500 },
};

/** The ErrorInfo `domain` of every error this service raises. */
export const ERROR_DOMAIN = "sutra.embedder.v1";

/** Wait a client is told for OVERLOADED and RATE_LIMITED when the error names none. */
export const DEFAULT_RETRY_AFTER_MS = 1000;

/**
 * Seconds a client should wait before retrying, as `Retry-After` and the
 * `retry-after` metadata carry them: the error's `retryAfterMs` rounded up (a
 * client must never retry early), or DEFAULT_RETRY_AFTER_MS for OVERLOADED and
 * RATE_LIMITED, which always tell the client when to come back. Undefined for
 * errors that are not worth retrying as they are.
 */
export function retryAfterSeconds(error: EmbedderError): number | undefined {
  const throttled = error.reason === "OVERLOADED" || error.reason === "RATE_LIMITED" || error.reason === "TOO_MANY_STREAMS";
  const milliseconds = error.retryAfterMs ?? (throttled ? DEFAULT_RETRY_AFTER_MS : undefined);
  return milliseconds === undefined ? undefined : Math.max(1, Math.ceil(milliseconds / 1000));
}
