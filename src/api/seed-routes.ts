import { create } from "@bufbuild/protobuf";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { createEmbedRequest } from "../domain/embed-request.js";
import { EmbedderError } from "../domain/errors.js";
import type { JobService } from "../domain/jobs.js";
import type { Embedder, HealthReport, ModelDescription } from "../domain/types.js";
import type { Metrics } from "../observability/metrics.js";
import { LOCAL_PROVIDER } from "../providers/provider-config.js";
import { DownloadModelResponseSchema, ModelSchema } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import type { HttpRoute } from "./create-http-handler.js";
import { sendJson } from "./node-types.js";
import type { NodeResponse } from "./node-types.js";
import { toDownloadModelResponse, toModel } from "./proto-conversion.js";
import type { ProviderAdmin } from "./provider-routes.js";
import { invalidField, readBodyFields } from "./read-body-fields.js";
import { answerHeaders, PROVIDER_HEADER } from "./request-context.js";
import { messageToRestJson } from "./rest/rest-json.js";
import { createSeedMediaRoutes } from "./seed-media-routes.js";
import { seedModelName } from "./seed-model-name.js";

/** What the seed API's routes need. */
export interface SeedRouteDeps {
  /** The front door: embeddings, models, downloads, health. */
  embedder: Embedder;
  /** The provider gateway's facts (models, allowlist, breakers); absent = no providers configured. */
  providers?: ProviderAdmin;
  /** Document jobs, behind the media routes; absent = they answer NOT_IMPLEMENTED. */
  jobs?: JobService;
  /** Where the health answer reads `active_requests` (the front door's count). */
  metrics: Pick<Metrics, "activeRequests">;
}

/** The `service` the seed health answer names. */
const SERVICE_NAME = "sutra-embedder";

/** Text embedded by a warmup: short, so warming costs one tiny batch per model. */
const WARMUP_TEXT = "warmup";
/** Most models one warmup request may name (each is loaded and run in turn). */
const MAX_WARMUP_MODELS = 32;

/**
 * The Prometheus routes: `GET /metrics` and the seed's `GET
 * /v1/embeddings/metrics` (also `/api/v1/...`), both open, both the service's
 * prom-client registry in the text exposition format.
 */
export function createMetricsRoutes(metrics: Metrics): HttpRoute[] {
  const serve: HttpRoute["handle"] = async ({ response }) => {
    const text = await metrics.registry.metrics();
    response.statusCode = 200;
    response.setHeader("content-type", metrics.registry.contentType);
    response.setHeader("content-length", Buffer.byteLength(text));
    response.end(text);
  };
  return [
    { method: "GET", path: "/metrics", access: "open", handle: serve },
    { method: "GET", path: "/v1/embeddings/metrics", access: "open", handle: serve },
  ];
}

/**
 * The compatibility routes of the seed "Embeddings API" guide (docs/REST.md),
 * each also under `/api/v1`, in the guide's shapes:
 * - `POST /v1/embeddings/batch` {texts, model, provider, dimensions} ->
 *   {embeddings, model, provider, count}; `provider` other than `local`
 *   becomes `provider:model`, the gateway's spelling.
 * - `GET /v1/embeddings/models` -> {data: [{provider, model, allowed,
 *   default}], allowed_providers, allowed_models}: the server's models
 *   (`local`) then each provider's; `allowed_providers` is the provider
 *   allowlist (null = all), `allowed_models` null (requests are not limited by
 *   model). `GET /v1/embeddings/models/{model_id}` -> one model in the REST
 *   shape of ListModels, found by id or alias (UNKNOWN_MODEL otherwise).
 * - `GET /v1/embeddings/health` -> {status, service, timestamp, cache_stats
 *   {size, max_size, ttl_seconds}, active_requests, circuit_breakers {provider:
 *   {state, failure_count}}}, 200 only when healthy (degraded and unhealthy
 *   are 503, as the guide documents). Open.
 * - `POST /v1/embeddings/models/warmup` (admin) {models?: [...]} or {model}:
 *   loads each model (the default one when none is named) and embeds one short
 *   text with it -> {results: [{model, status: warm|failed, model_id,
 *   latency_ms | error}]}.
 * - `POST /v1/embeddings/models/download` (admin) {model_id (or model),
 *   revision?}: starts or polls a hub download, as DownloadModel answers it.
 * - the media routes of createSeedMediaRoutes.
 */
export function createSeedRoutes(deps: SeedRouteDeps): HttpRoute[] {
  const { embedder, providers } = deps;
  return [
    {
      method: "POST",
      path: "/v1/embeddings/batch",
      access: "user",
      async handle({ request: httpRequest, response, requestId, principal, readJson }) {
        const body = readBodyFields(await readJson());
        const providerHeader = httpRequest.headers[PROVIDER_HEADER];
        const request = createEmbedRequest({
          requestId,
          principal,
          texts: body.strings("texts"),
          dimensions: body.integer("dimensions"),
          model: seedModelName(body.string("provider"), body.string("model") ?? ""),
          // This route answers floats only, so a binary preset still computes them.
          embeddingTypes: ["float"],
          provider: typeof providerHeader === "string" ? providerHeader : undefined,
        });
        const result = await embedder.embed(request, clientGoneSignal(response));
        sendJson(response, 200, answerHeaders(result), {
          embeddings: result.embeddings.map((embedding) => Array.from(embedding.float ?? [])),
          model: result.run.modelId,
          provider: result.run.provider,
          count: result.embeddings.length,
          dimensions: result.run.dimensions,
          usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
        });
      },
    },
    {
      method: "GET",
      path: "/v1/embeddings/models",
      access: "user",
      async handle({ response }) {
        const { defaultModel } = embedder.health();
        const local = (await embedder.listModels({})).map((model) => ({ provider: LOCAL_PROVIDER, model: model.id, allowed: true, default: model.id === defaultModel }));
        const catalog = providers?.catalog() ?? { models: [], allowlist: [] };
        sendJson(response, 200, {}, {
          data: [...local, ...catalog.models.map((model) => ({ ...model, default: false }))],
          allowed_providers: catalog.allowlist.length === 0 ? null : catalog.allowlist,
          allowed_models: null,
        });
      },
    },
    {
      method: "GET",
      path: "/v1/embeddings/models/{model_id}",
      access: "user",
      async handle({ response, variables }) {
        const id = variables.model_id;
        const models = await embedder.listModels({});
        const found = models.find((model) => model.id === id) ?? models.find((model) => model.aliases.includes(id));
        if (found === undefined) {
          throw new EmbedderError("UNKNOWN_MODEL", `unknown model "${id}"`, { details: { model: id } });
        }
        sendJson(response, 200, {}, modelJson(found));
      },
    },
    {
      method: "GET",
      path: "/v1/embeddings/health",
      access: "open",
      async handle({ response }) {
        const report = embedder.health();
        sendJson(response, report.state === "healthy" ? 200 : 503, {}, {
          status: report.state,
          service: SERVICE_NAME,
          timestamp: new Date().toISOString(),
          cache_stats: cacheStatsJson(report.cache),
          active_requests: deps.metrics.activeRequests(),
          circuit_breakers: Object.fromEntries(
            (providers?.breakers() ?? []).map((breaker) => [breaker.provider, { state: breaker.state, failure_count: breaker.consecutiveFailures }]),
          ),
        });
      },
    },
    {
      method: "POST",
      path: "/v1/embeddings/models/warmup",
      access: "admin",
      async handle({ response, requestId, principal, readJson }) {
        const body = readBodyFields((await readJson()) ?? {});
        const names = body.has("models") ? body.strings("models") : [body.string("model") ?? ""];
        if (names.length > MAX_WARMUP_MODELS) throw invalidField("models", `lists more than ${MAX_WARMUP_MODELS} models`);
        const results: JsonObject[] = [];
        const clientGone = clientGoneSignal(response);
        for (const [index, name] of names.entries()) {
          const started = performance.now();
          try {
            const result = await embedder.embed(
              createEmbedRequest({ requestId: `${requestId}.${index}`, principal, texts: [WARMUP_TEXT], model: name }),
              clientGone,
            );
            results.push({ model: name, status: "warm", model_id: result.run.modelId, latency_ms: performance.now() - started });
          } catch (reason) {
            const error = EmbedderError.from(reason);
            if (error.reason === "CANCELLED") throw error;
            results.push({ model: name, status: "failed", error: { code: error.reason, message: error.message } });
          }
        }
        sendJson(response, 200, {}, { results });
      },
    },
    {
      method: "POST",
      path: "/v1/embeddings/models/download",
      access: "admin",
      async handle({ response, readJson }) {
        const body = readBodyFields(await readJson());
        const modelId = body.string("model_id") ?? body.string("model");
        if (modelId === undefined || modelId === "") throw invalidField("model_id", "is required: the hub id of the model to download");
        if (embedder.downloadModel === undefined) {
          throw new EmbedderError("NOT_IMPLEMENTED", "model downloads are not available on this server", { details: { route: "POST /v1/embeddings/models/download" } });
        }
        const status = await embedder.downloadModel(modelId, body.string("revision") ?? "");
        sendJson(response, 200, {}, messageToRestJson(DownloadModelResponseSchema, create(DownloadModelResponseSchema, toDownloadModelResponse(status))));
      },
    },
    ...createSeedMediaRoutes(deps.jobs),
  ];
}

/** The embedding cache as the guide's `cache_stats` shows it; `max_size` 0 = the cache is off. */
function cacheStatsJson(cache: HealthReport["cache"]): JsonObject {
  return { size: cache.entries, max_size: cache.maxEntries ?? 0, ttl_seconds: cache.ttlSeconds ?? null };
}

function modelJson(model: ModelDescription): JsonValue {
  return messageToRestJson(ModelSchema, create(ModelSchema, toModel(model)));
}

/** Aborts when the client goes away before its answer is written. */
function clientGoneSignal(response: NodeResponse): AbortSignal {
  const controller = new AbortController();
  response.once("close", () => {
    if (!response.writableFinished) controller.abort();
  });
  return controller.signal;
}
