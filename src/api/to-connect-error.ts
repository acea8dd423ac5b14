import { Code, ConnectError } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { EmbedderError } from "../domain/errors.js";
import type { ErrorDetails } from "../domain/errors.js";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ERROR_DOMAIN, ERROR_TABLE, retryAfterSeconds } from "./error-table.js";
import { interceptFailures } from "./intercept-failures.js";

/**
 * Turns a domain error into the ConnectError every RPC protocol (gRPC, gRPC-Web,
 * Connect) sends: the code from ERROR_TABLE, the client-facing message, a
 * `google.rpc.ErrorInfo` detail (reason, domain "sutra.embedder.v1", the details
 * as string metadata), and for errors that name a wait (retryAfterSeconds) a
 * `google.rpc.RetryInfo` detail plus `retry-after` metadata (seconds). The
 * domain error stays the `cause`, for logs only.
 */
export function toConnectError(error: EmbedderError): ConnectError {
  const retryAfter = retryAfterSeconds(error);
  const details: NonNullable<ConstructorParameters<typeof ConnectError>[3]> = [
    { desc: ErrorInfoSchema, value: { reason: error.reason, domain: ERROR_DOMAIN, metadata: detailsAsMetadata(error.details) } },
  ];
  if (retryAfter === undefined) {
    return new ConnectError(error.message, ERROR_TABLE[error.reason].code, undefined, details, error);
  }
  details.push({ desc: RetryInfoSchema, value: { retryDelay: { seconds: BigInt(retryAfter) } } });
  return new ConnectError(error.message, ERROR_TABLE[error.reason].code, { "retry-after": String(retryAfter) }, details, error);
}

/**
 * ErrorInfo metadata is a string map: numbers and booleans are printed, lists
 * are joined with commas.
 */
function detailsAsMetadata(details: ErrorDetails): Record<string, string> {
  return Object.fromEntries(
    Object.entries(details).map(([key, value]) => [key, Array.isArray(value) ? value.join(",") : String(value)]),
  );
}

/**
 * Server interceptor that makes every RPC failure speak the error model: a
 * ConnectError raised on purpose passes through, anything else is wrapped with
 * embedderErrorFor (a failure after the client left is CANCELLED) and
 * converted by toConnectError, also for errors raised
 * while a response stream is iterated. Failures that are the server's fault
 * (HTTP 5xx in the table, except 501) are logged with their cause; the rest at
 * debug level, since they are the client's business.
 */
export function createErrorInterceptor(logger: Logger): Interceptor {
  return interceptFailures((reason, request) => {
    if (reason instanceof ConnectError) return reason;
    const error = embedderErrorFor(reason, request.signal);
    logEmbedderError(logger, error, { procedure: `${request.service.typeName}/${request.method.name}` });
    return toConnectError(error);
  });
}

/**
 * Logs one failure at the level it deserves: server faults (5xx other than
 * NOT_IMPLEMENTED) at error level with the cause, everything else at debug.
 */
export function logEmbedderError(logger: Logger, error: EmbedderError, bindings: Record<string, unknown>): void {
  const status = ERROR_TABLE[error.reason].httpStatus;
  const fields = { ...bindings, reason: error.reason, details: error.details };
  if (status >= 500 && error.reason !== "NOT_IMPLEMENTED") {
    logger.error({ ...fields, err: error.cause ?? error }, error.message);
  } else {
    logger.debug(fields, error.message);
  }
}

/**
 * The domain error behind a failed call, given the call's signal:
 * DEADLINE_EXCEEDED when the call's deadline fired (connect aborts the signal
 * with a DeadlineExceeded ConnectError, and the pipeline then rejects as
 * cancelled); CANCELLED when the signal aborted otherwise and what was thrown
 * is no domain error: the client reset the stream or dropped the connection,
 * and reading its request or writing its answer then failed with whatever
 * Node says (ERR_STREAM_PREMATURE_CLOSE, ...), which is no server fault.
 * Otherwise EmbedderError.from of what was thrown.
 */
export function embedderErrorFor(reason: unknown, signal: AbortSignal): EmbedderError {
  if (signal.aborted && signal.reason instanceof ConnectError && signal.reason.code === Code.DeadlineExceeded) {
    return new EmbedderError("DEADLINE_EXCEEDED", "the request deadline was exceeded", { cause: reason });
  }
  if (signal.aborted && !(reason instanceof EmbedderError)) {
    return new EmbedderError("CANCELLED", "the request was cancelled", { cause: reason });
  }
  return EmbedderError.from(reason);
}

/** Connect code names in snake case (`resource_exhausted`), as Connect's JSON errors spell them and `sutra_requests_total` labels them. */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}
