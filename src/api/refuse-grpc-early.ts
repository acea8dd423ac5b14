import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import type { AccessControl } from "../admission/access-control.js";
import { EmbedderError } from "../domain/errors.js";
import type { FailureCounter } from "../observability/count-failure.js";
import type { Metrics } from "../observability/metrics.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { accessOfRpc, type EarlyAdmitted } from "./access-policy.js";
import { requestOriginOf, type OriginGuard } from "./check-request-origin.js";
import { connectionOf } from "./connection-context.js";
import type { NodeRequest } from "./node-types.js";
import { REQUEST_ID_HEADER } from "./request-context.js";
import { codeName, logEmbedderError, toConnectError } from "./to-connect-error.js";
import type { WatchLimits } from "./watch-limits.js";

/** The procedure of grpc.health.v1 Watch, whose open streams are bounded by WatchLimits. */
const WATCH_PROCEDURE = "grpc.health.v1.Health/Watch";

/**
 * Refusals in a row on one HTTP/2 connection, with no call admitted between
 * them, after which the connection is told to go away (GOAWAY
 * ENHANCE_YOUR_CALM): one full window of streams, all refused. Only refusals
 * no retry can cure count (below); a rate-limited client is not cut off.
 */
const MAX_REFUSALS_IN_A_ROW = 100;

/** Refusals that say the client is misbehaving, not merely early or busy. */
const ABUSIVE_REASONS: ReadonlySet<string> = new Set(["UNAUTHENTICATED", "TOO_MANY_STREAMS", "MISDIRECTED_REQUEST", "ORIGIN_NOT_ALLOWED"]);

/** What the early admission needs. */
export interface EarlyGrpcAdmissionOptions {
  /** Procedures the router serves (`package.Service/Method`). */
  procedures: ReadonlySet<string>;
  access: AccessControl;
  checkOrigin: OriginGuard;
  watchLimits: WatchLimits;
  metrics: Metrics;
  /** Counts each refusal once. */
  failures: FailureCounter;
  logger: Logger;
}

/**
 * Admits a gRPC call over HTTP/2 before connect's per-call machinery starts.
 * Returns undefined at once for requests it leaves to connect as they are
 * (not gRPC over HTTP/2, or not a served procedure); else a promise of the
 * admitted caller (to hand to connect as the `admittedKey` context value), or
 * of `false` when it refused the call and answered it itself.
 */
export type EarlyGrpcAdmission = (request: NodeRequest, requestId: string) => Promise<EarlyAdmitted | false> | undefined;

/**
 * Creates the early admission for gRPC over HTTP/2, where one connection can
 * open a hundred streams at once: a flood of calls that will be refused (no or
 * a wrong key, a foreign Host or Origin, Watch streams beyond their bound)
 * must cost the server little, or a flood of them starves every other client
 * of the event loop. The same checks the interceptors run (origin guard,
 * access check, Watch slots) run here on the headers alone, and a refusal is
 * written as a trailers-only gRPC response (status, message, and the
 * `google.rpc.Status` details with ErrorInfo and RetryInfo, as toConnectError
 * builds them) straight on the HTTP/2 stream, counted and logged like any
 * other refusal; its headers are built once per distinct refusal. A Watch
 * call takes its slot here and hands it to the health service. A
 * connection that draws MAX_REFUSALS_IN_A_ROW such refusals without one
 * admitted call is sent GOAWAY (ENHANCE_YOUR_CALM) and closed once its open
 * streams end, so a flood on it stops costing the server. Calls it admits go
 * on to connect with the caller attached; the interceptors still run, and the
 * Watch slot itself is taken by the health service.
 */
export function createEarlyGrpcAdmission(options: EarlyGrpcAdmissionOptions): EarlyGrpcAdmission {
  const refusalsInARow = new WeakMap<http2.Http2Session, number>();
  const trailersOf = createTrailersCache();
  const noteRefusal = (session: http2.Http2Session | undefined, refusal: EmbedderError): void => {
    if (session === undefined || session.closed || !ABUSIVE_REASONS.has(refusal.reason)) return;
    const count = (refusalsInARow.get(session) ?? 0) + 1;
    refusalsInARow.set(session, count);
    if (count < MAX_REFUSALS_IN_A_ROW) return;
    options.logger.warn({ refusals: count, reason: refusal.reason }, "closing an HTTP/2 connection whose calls are all refused");
    session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    session.close();
  };
  const admit = async (request: NodeRequest & { stream: http2.ServerHttp2Stream }, procedure: string, requestId: string): Promise<EarlyAdmitted | false> => {
    const [typeName, methodName] = procedure.split("/");
    try {
      options.checkOrigin(requestOriginOf(request));
      const principal = await options.access.admit(request.headers, accessOfRpc(typeName, methodName));
      // Taken here, not in the handler: a burst of Watch calls on one connection is refused before any reaches connect.
      const watchSlot = procedure === WATCH_PROCEDURE ? options.watchLimits.acquire(connectionOf(request)) : undefined;
      if (request.stream.session !== undefined) refusalsInARow.delete(request.stream.session);
      if (watchSlot === undefined) return { principal };
      request.stream.once("close", watchSlot);
      return { principal, watchSlot };
    } catch (error) {
      const refusal = EmbedderError.from(error);
      const trailers = trailersOf(refusal);
      options.failures(refusal);
      options.metrics.recordRequest("grpc", `/${procedure}`, trailers.codeName);
      logEmbedderError(options.logger, refusal, { procedure, requestId });
      writeTrailersOnly(request.stream, trailers.headers, requestId);
      noteRefusal(request.stream.session, refusal);
      return false;
    }
  };
  return (request, requestId) => {
    if (!("stream" in request) || !isGrpcContentType(request.headers["content-type"])) return undefined;
    const procedure = (request.url ?? "").split("?", 1)[0].slice(1);
    return options.procedures.has(procedure) ? admit(request, procedure, requestId) : undefined;
  };
}

function isGrpcContentType(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/grpc(\+[a-z]+)?(;|$)/i.test(contentType);
}

/** A refusal as a trailers-only gRPC answer, and its code name as `sutra_requests_total` labels it. */
interface RefusalTrailers {
  headers: Readonly<http2.OutgoingHttpHeaders>;
  codeName: string;
}

/** Most distinct refusals whose encoded headers are kept; refusals differ by reason, message and details. */
const TRAILERS_CACHE_SIZE = 64;

/**
 * Builds the trailers of a refusal (status, message, `google.rpc.Status`
 * details as toConnectError makes them, retry-after), keeping the last
 * TRAILERS_CACHE_SIZE distinct ones: a flood repeats the same few refusals.
 */
function createTrailersCache(): (error: EmbedderError) => RefusalTrailers {
  const cache = new Map<string, RefusalTrailers>();
  return (error) => {
    const key = JSON.stringify([error.reason, error.message, error.details, error.retryAfterMs]);
    const cached = cache.get(key);
    if (cached !== undefined) return cached;
    const connectError = toConnectError(error);
    const status = create(StatusSchema, {
      code: connectError.code,
      message: connectError.rawMessage,
      details: connectError.details.map((detail) => ("desc" in detail ? anyPack(detail.desc, create(detail.desc, detail.value)) : { typeUrl: `type.googleapis.com/${detail.type}`, value: detail.value })),
    });
    const headers: http2.OutgoingHttpHeaders = {
      "grpc-status": String(connectError.code),
      "grpc-message": encodeURIComponent(connectError.rawMessage),
      "grpc-status-details-bin": Buffer.from(toBinary(StatusSchema, status)).toString("base64").replace(/=+$/, ""),
    };
    connectError.metadata.forEach((value, key) => {
      headers[key] = value;
    });
    const trailers = { headers, codeName: codeName(connectError.code) };
    if (cache.size >= TRAILERS_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
    cache.set(key, trailers);
    return trailers;
  };
}

/**
 * Answers a gRPC call with a trailers-only response (one HEADERS frame with
 * END_STREAM carrying the status), then resets the stream with NO_ERROR once
 * that frame is out, so a client still sending stops.
 */
function writeTrailersOnly(stream: http2.ServerHttp2Stream, trailers: Readonly<http2.OutgoingHttpHeaders>, requestId: string): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ":status": 200, "content-type": "application/grpc", [REQUEST_ID_HEADER]: requestId, ...trailers }, { endStream: true });
  setImmediate(() => {
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
  });
}
