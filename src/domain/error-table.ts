import { Code } from "@connectrpc/connect";
import type { ErrorReason } from "./errors.js";

/** What one failure reason means to the transports and to whoever may try the request again. */
export interface ErrorMapping {
  /** gRPC / Connect status code. */
  code: Code;
  /** HTTP status of the REST (and OpenAI dialect) answer. */
  httpStatus: number;
  /**
   * Whether a later try of the same request may succeed: the cause passes
   * (load, a rate limit, a restart, a worker or an upstream that comes back).
   * False where the request, the caller or the data must change first.
   */
  retryable: boolean;
}

/**
 * The one table that turns a domain failure reason into a gRPC/Connect code,
 * an HTTP status and whether it is worth retrying. Every transport asks it for
 * the status; the SDK's retries, the provider gateway's retries and fallback
 * and the default `retry-after` read its `retryable` column instead of
 * keeping reason lists of their own. It lives in the domain, not in the
 * transport folder, because stages decide on it too.
 * docs/ERRORS.md lists the same rows and a unit test keeps the two in step.
 */
export const ERROR_TABLE: { readonly [R in ErrorReason]: ErrorMapping } = {
  EMPTY_INPUT: { code: Code.InvalidArgument, httpStatus: 400, retryable: false },
  TOO_MANY_INPUTS: { code: Code.InvalidArgument, httpStatus: 400, retryable: false },
  INVALID_DIMENSIONS: { code: Code.InvalidArgument, httpStatus: 400, retryable: false },
  INVALID_ARGUMENT: { code: Code.InvalidArgument, httpStatus: 400, retryable: false },
  INPUT_TOO_LONG: { code: Code.InvalidArgument, httpStatus: 400, retryable: false },
  PAYLOAD_TOO_LARGE: { code: Code.ResourceExhausted, httpStatus: 413, retryable: false },
  UNSUPPORTED_MEDIA_TYPE: { code: Code.InvalidArgument, httpStatus: 415, retryable: false },
  UNAUTHENTICATED: { code: Code.Unauthenticated, httpStatus: 401, retryable: false },
  FORBIDDEN: { code: Code.PermissionDenied, httpStatus: 403, retryable: false },
  ORIGIN_NOT_ALLOWED: { code: Code.PermissionDenied, httpStatus: 403, retryable: false },
  MISDIRECTED_REQUEST: { code: Code.PermissionDenied, httpStatus: 421, retryable: false },
  UNKNOWN_MODEL: { code: Code.NotFound, httpStatus: 404, retryable: false },
  JOB_NOT_FOUND: { code: Code.NotFound, httpStatus: 404, retryable: false },
  ROUTE_NOT_FOUND: { code: Code.NotFound, httpStatus: 404, retryable: false },
  RATE_LIMITED: { code: Code.ResourceExhausted, httpStatus: 429, retryable: true },
  OVERLOADED: { code: Code.ResourceExhausted, httpStatus: 429, retryable: true },
  TOO_MANY_STREAMS: { code: Code.ResourceExhausted, httpStatus: 429, retryable: true },
  CANCELLED: { code: Code.Canceled, httpStatus: 499, retryable: false },
  NOT_IMPLEMENTED: { code: Code.Unimplemented, httpStatus: 501, retryable: false },
  MODEL_NOT_READY: { code: Code.Unavailable, httpStatus: 503, retryable: false },
  WORKER_FAILED: { code: Code.Unavailable, httpStatus: 503, retryable: true },
  UPSTREAM_UNAVAILABLE: { code: Code.Unavailable, httpStatus: 503, retryable: true },
  SHUTTING_DOWN: { code: Code.Unavailable, httpStatus: 503, retryable: true },
  UPSTREAM_BAD_RESPONSE: { code: Code.Unavailable, httpStatus: 502, retryable: false },
  DEADLINE_EXCEEDED: { code: Code.DeadlineExceeded, httpStatus: 504, retryable: false },
  DATA_DAMAGED: { code: Code.DataLoss, httpStatus: 500, retryable: false },
  INTERNAL: { code: Code.Internal, httpStatus: 500, retryable: false },
};
