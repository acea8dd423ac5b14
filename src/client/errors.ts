import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ERROR_TABLE } from "../domain/error-table.js";
import { ERROR_REASONS } from "../domain/errors.js";

/** The ErrorInfo `domain` of errors the Sutra server raises. */
export const SUTRA_ERROR_DOMAIN = "sutra.embedder.v1";

/**
 * Reasons the SDK retries: the server refused or lost the call for a cause
 * that passes (load, rate, a restart, a worker or an upstream that comes
 * back), read from the `retryable` column of the server's own error table so
 * that the SDK and the server cannot disagree. Every other reason is final as
 * sent: PAYLOAD_TOO_LARGE, the INVALID_* family, UPSTREAM_BAD_RESPONSE (an
 * upstream answering wrong counts answers wrong again), MODEL_NOT_READY (the
 * model must be downloaded first), UNKNOWN_MODEL, FORBIDDEN...
 */
export const RETRYABLE_REASONS: readonly string[] = ERROR_REASONS.filter((reason) => ERROR_TABLE[reason].retryable);

/** What the SDK reads from a failed call. */
export interface FailureFacts {
  /** The Connect/gRPC code. */
  code: Code;
  /** The server's reason (docs/ERRORS.md) from the `google.rpc.ErrorInfo` detail; undefined when the answer had none (a proxy or the network failed). */
  reason?: string;
  /** ErrorInfo metadata (index, limit, ...), as the server sent it. */
  details: Record<string, string>;
  /** How long the server asked the client to wait, in ms (`retry-after` metadata or RetryInfo). */
  retryAfterMs?: number;
  /**
   * The HTTP/2 peer (a server or a proxy such as nginx) reset the stream with
   * REFUSED_STREAM: by RFC 9113 section 8.7 it did no work on it, so sending
   * it again is safe even for a call that is not idempotent.
   */
  refused: boolean;
  /**
   * The call broke below the service (a reset stream or connection, a proxy's
   * 5xx) rather than being answered with a reason: connect-node reports such
   * failures as UNAVAILABLE, INTERNAL or UNKNOWN depending on where they broke.
   */
  transport: boolean;
}

/**
 * Reads a failure's facts: the code, the reason and details from the
 * ErrorInfo detail, and the wait from `retry-after` (seconds, as HTTP has it)
 * or else the RetryInfo detail. Anything that is not a ConnectError is wrapped
 * with ConnectError.from first (an aborted call reads as CANCELED).
 */
export function failureFacts(error: unknown): FailureFacts {
  const connectError = ConnectError.from(error);
  const info = connectError.findDetails(ErrorInfoSchema).find((detail) => detail.domain === SUTRA_ERROR_DOMAIN);
  const chain = info === undefined ? causeChain(connectError) : [];
  const refused = chain.some((reason) => /REFUSED_STREAM/.test(reason.message));
  const transport = connectError.code === Code.Unavailable || chain.some((reason) => TRANSPORT_FAILURE.test(reason.message) || TRANSPORT_CODES.has(String((reason as { code?: unknown }).code)));
  const facts: FailureFacts = { code: connectError.code, details: info ? { ...info.metadata } : {}, refused, transport: info === undefined && transport };
  if (info) facts.reason = info.reason;
  const header = connectError.metadata.get("retry-after");
  const headerSeconds = header === null ? NaN : Number(header);
  if (Number.isFinite(headerSeconds) && headerSeconds >= 0) {
    facts.retryAfterMs = headerSeconds * 1000;
  } else {
    const delay = connectError.findDetails(RetryInfoSchema)[0]?.retryDelay;
    if (delay) facts.retryAfterMs = Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1e6);
  }
  return facts;
}

/** Messages of HTTP/2 and socket failures, as Node and connect-node word them. */
const TRANSPORT_FAILURE = /NGHTTP2_|stream closed with error code|ECONNRESET|EPIPE|socket hang up/i;
/** Node error codes of broken HTTP/2 streams, sessions and sockets. */
const TRANSPORT_CODES = new Set(["ERR_HTTP2_STREAM_ERROR", "ERR_HTTP2_SESSION_ERROR", "ERR_HTTP2_GOAWAY_SESSION", "ECONNRESET", "EPIPE", "ECONNREFUSED"]);

/** An error and its causes, outermost first (at most 8, so a cycle cannot hang). */
function causeChain(error: Error): Error[] {
  const chain: Error[] = [];
  for (let current: unknown = error; current instanceof Error && chain.length < 8 && !chain.includes(current); current = current.cause) chain.push(current);
  return chain;
}

/** The server's reason for a failed call (ErrorInfo), or undefined when none was sent. */
export function errorReason(error: unknown): string | undefined {
  return failureFacts(error).reason;
}

/**
 * Whether a failure is worth sending again unchanged. A reason from the
 * server decides (RETRYABLE_REASONS, or the caller's own list). Without a
 * reason, a refused stream (no work was done) is always retried, and any
 * other failure below the service (`transport`: a refused or reset connection
 * or stream, a proxy's 502/503/504, which is how a replica that died mid-call
 * looks) only for calls that are safe to repeat (`idempotent`): every rpc but
 * CreateJob.
 */
export function isRetryable(facts: FailureFacts, options: { reasons: readonly string[]; idempotent: boolean }): boolean {
  if (facts.reason !== undefined) return options.reasons.includes(facts.reason);
  if (facts.refused) return true;
  return options.idempotent && facts.transport;
}
