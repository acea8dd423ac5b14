import http2 from "node:http2";
import { performance } from "node:perf_hooks";
import { isMessage } from "@bufbuild/protobuf";
import type { DescMethod, Message } from "@bufbuild/protobuf";
import { createServiceImplSpec } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { AccessControl } from "../admission/access-control.js";
import type { JobService } from "../domain/jobs.js";
import type { EmbedRequest, Embedder } from "../domain/types.js";
import type { FailureCounter } from "../observability/count-failure.js";
import type { Metrics } from "../observability/metrics.js";
import type { StreamSessions } from "../streaming/create-stream-sessions.js";
import { file_google_rpc_error_details } from "../../gen/google/rpc/error_details_pb.js";
import { file_google_rpc_status } from "../../gen/google/rpc/status_pb.js";
import { file_grpc_health_v1_health, Health } from "../../gen/grpc/health/v1/health_pb.js";
import {
  file_grpc_reflection_v1_reflection,
  ServerReflection as ServerReflectionV1,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  file_grpc_reflection_v1alpha_reflection,
  ServerReflection as ServerReflectionV1alpha,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import {
  EmbedderService,
  file_sutra_embedder_v1_embedder,
  GetHealthResponseSchema,
  HealthStatus,
} from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { createOriginInterceptor, requestHostName, type OriginGuard } from "./check-request-origin.js";
import type { CorsHandler } from "./create-cors-handler.js";
import { createConnectHandler } from "./create-connect-handler.js";
import { createEmbedderService } from "./create-embedder-service.js";
import { createHealthService } from "./create-health-service.js";
import { createHttpHandler } from "./create-http-handler.js";
import { createOpenAiDialect } from "./openai/create-openai-dialect.js";
import { createReflectionServices } from "./create-reflection-services.js";
import type { NodeRequest, NodeRequestListener, NodeResponse } from "./node-types.js";
import { REQUEST_ID_HEADER, resolveRequestId } from "./request-context.js";
import { createEarlyGrpcAdmission } from "./refuse-grpc-early.js";
import { createRestHandler } from "./rest/create-rest-handler.js";
import { writeRestError } from "./rest/write-rest-error.js";
import { createAccessInterceptor, createFailureInterceptor, createMetricsInterceptor } from "./rpc-interceptors.js";
import { createProviderRoutes, type ProviderAdmin } from "./provider-routes.js";
import { createMetricsRoutes, createSeedRoutes } from "./seed-routes.js";
import { createErrorInterceptor } from "./to-connect-error.js";
import type { WatchLimits } from "./watch-limits.js";
import { createPlaygroundRoutes } from "../playground/playground-routes.js";

/** What the request listener needs; see ServerDeps for the meaning of each. */
export interface RequestListenerOptions {
  embedder: Embedder;
  logger: Logger;
  limits: { maxBodyBytes: number };
  /** Ends long-lived health Watch streams when the server closes; unary calls are left to finish. */
  shutdownSignal: AbortSignal;
  healthPollMs: number;
  /** Slots of open grpc.health.v1 Watch streams, in all and per connection. */
  watchLimits: WatchLimits;
  /** Authentication, roles and request rate, checked on every transport before a body is read. */
  access: AccessControl;
  /** Host and browser-origin check (createOriginGuard), run on every request before the access check. */
  checkOrigin: OriginGuard;
  /** CORS for the browser origins of `SUTRA_CORS_ORIGINS` (createCorsHandler), run on every request before it is dispatched. */
  cors: CorsHandler;
  metrics: Metrics;
  /** Counts a refusal the transport answers (once: the front door shares it). */
  failures: FailureCounter;
  /** Where StreamEmbeddings streams are opened. */
  streams: StreamSessions;
  /** Upstream providers' breakers and configuration for the admin routes; absent = none configured. */
  providers?: ProviderAdmin;
  /** Document jobs; absent = the job rpcs answer NOT_IMPLEMENTED. */
  jobs?: JobService;
}

/** REST paths whose requests queue texts for inference (GenerateEmbeddings, its stream, the OpenAI dialect). */
const QUEUEING_REST_PATHS = new Set(["/v1/embeddings", "/v1/embeddings/stream"]);

/** Every service the server answers for, as reflection lists them. */
export const SERVED_SERVICES = [
  EmbedderService.typeName,
  Health.typeName,
  ServerReflectionV1.typeName,
  ServerReflectionV1alpha.typeName,
] as const;

/**
 * The one request listener behind both HTTP versions: it settles the request
 * id (echoed in `x-request-id` on every answer, errors included), gives the
 * request to the Connect router when the path is an rpc (gRPC, gRPC-Web,
 * Connect; EmbedderService, grpc.health.v1, reflection v1 and v1alpha), and to
 * the REST transcoder otherwise. Both call the same EmbedderService
 * implementation, and both run the origin guard (Host, browser Origin)
 * before the access check: the rpcs in an interceptor, so a refusal takes
 * the protocol's error form. A request whose Host names no valid host goes
 * to the HTTP side, which refuses it (MISDIRECTED_REQUEST). CORS comes
 * first: a preflight from an allowed origin is answered there, and any other
 * request from one gets its CORS headers before any transport answers it.
 */
export function createRequestListener(options: RequestListenerOptions): NodeRequestListener {
  const embedderService = createEmbedderService({ embedder: options.embedder, streams: options.streams, jobs: options.jobs });
  const health = createHealthService({
    embedder: options.embedder,
    services: [EmbedderService.typeName],
    pollMs: options.healthPollMs,
    shutdownSignal: options.shutdownSignal,
    watchLimits: options.watchLimits,
  });
  const reflection = createReflectionServices(
    [
      file_sutra_embedder_v1_embedder,
      file_grpc_health_v1_health,
      file_grpc_reflection_v1_reflection,
      file_grpc_reflection_v1alpha_reflection,
      file_google_rpc_status,
      file_google_rpc_error_details,
    ],
    SERVED_SERVICES,
  );
  const connect = createConnectHandler({
    routes: (router) =>
      router
        .service(EmbedderService, embedderService)
        .service(Health, health)
        .service(ServerReflectionV1, reflection.v1)
        .service(ServerReflectionV1alpha, reflection.v1alpha),
    maxBodyBytes: options.limits.maxBodyBytes,
    interceptors: [
      createMetricsInterceptor(options.metrics),
      createErrorInterceptor(options.logger),
      createFailureInterceptor(options.failures),
      createOriginInterceptor(options.checkOrigin),
      createAccessInterceptor(options.access),
    ],
    logger: options.logger,
  });
  const rest = createRestHandler({
    services: [createServiceImplSpec<typeof EmbedderService>(EmbedderService, embedderService)],
    maxBodyBytes: options.limits.maxBodyBytes,
    logger: options.logger,
    statusOf: restStatusOf,
    dialects: [createOpenAiDialect({ embedder: options.embedder })],
    onError: options.failures,
  });
  const http = createHttpHandler({
    routes: [
      ...createMetricsRoutes(options.metrics),
      ...createSeedRoutes({ embedder: options.embedder, providers: options.providers, jobs: options.jobs, metrics: options.metrics }),
      ...createProviderRoutes(options.providers),
      ...createPlaygroundRoutes(),
    ],
    rest,
    access: options.access,
    checkOrigin: options.checkOrigin,
    metrics: options.metrics,
    failures: options.failures,
    logger: options.logger,
    maxBodyBytes: options.limits.maxBodyBytes,
  });
  /**
   * A REST embedding request is admitted before anything else is done with it (Embedder.reserve):
   * under a burst on a full queue, the refusal costs no body read, no parsing and no access
   * check, so it comes at once. An admitted request holds its place until its texts are queued
   * (the engine releases it) or its answer ends.
   */
  const admitEarly = (request: NodeRequest, response: NodeResponse, requestId: string): EmbedRequest["admission"] | "refused" => {
    if (request.method !== "POST" || !QUEUEING_REST_PATHS.has(request.url ?? "")) return undefined;
    const admission = options.embedder.reserve?.();
    if (admission === undefined) return undefined;
    if ("release" in admission) {
      response.once("close", admission.release);
      return admission;
    }
    const started = performance.now();
    response.once("close", () => options.metrics.recordRequest("http", `POST ${request.url}`, String(response.statusCode), (performance.now() - started) / 1000));
    request.resume();
    writeRestError(response, admission.refused, requestId);
    return "refused";
  };
  const early = createEarlyGrpcAdmission({
    procedures: new Set([EmbedderService, Health, ServerReflectionV1, ServerReflectionV1alpha].flatMap((service) => service.methods.map((method) => `${service.typeName}/${method.name}`))),
    access: options.access,
    checkOrigin: options.checkOrigin,
    watchLimits: options.watchLimits,
    metrics: options.metrics,
    failures: options.failures,
    logger: options.logger,
  });
  return (request, response) => {
    const requestId = resolveRequestId(request.headers[REQUEST_ID_HEADER]);
    response.setHeader(REQUEST_ID_HEADER, requestId);
    if (options.cors(request, response)) return;
    const reserved = admitEarly(request, response, requestId);
    if (reserved === "refused") return;
    // connect-node cannot take a request without a valid authority (it throws); the HTTP side refuses it.
    if (requestHostName(request) === undefined) {
      void http(request, response, requestId, reserved);
      return;
    }
    const admission = early(request, requestId);
    if (admission === undefined) {
      if (!connect(request, response, requestId)) void http(request, response, requestId, reserved);
      return;
    }
    admission.then(
      (admitted) => {
        if (admitted !== false) connect(request, response, requestId, admitted);
      },
      (error: unknown) => {
        options.logger.error({ err: error, requestId }, "early gRPC admission failed");
        if ("stream" in request && !request.stream.destroyed) request.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      },
    );
  };
}

/** `GET /v1/health` answers 503 when the service is unhealthy, 200 otherwise (healthy or degraded; docs/REST.md). */
function restStatusOf(method: DescMethod, response: Message): number | undefined {
  const unhealthy =
    method === EmbedderService.method.getHealth &&
    isMessage(response, GetHealthResponseSchema) &&
    response.status === HealthStatus.UNHEALTHY;
  return unhealthy ? 503 : undefined;
}
