import { create } from "@bufbuild/protobuf";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { createEmbedRequest } from "../domain/embed-request.js";
import { EmbedderError } from "../domain/errors.js";
import type { Embedder, ModelDescription } from "../domain/types.js";
import type { Metrics } from "../observability/metrics.js";
import { GetHealthResponseSchema, ListModelsResponseSchema } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import type { HttpRoute } from "./create-http-handler.js";
import { sendJson } from "./node-types.js";
import type { NodeResponse } from "./node-types.js";
import { toGetHealthResponse, toListModelsResponse } from "./proto-conversion.js";
import { PROVIDER_HEADER, providerHeaders, timingHeaders } from "./request-context.js";
import { messageToRestJson } from "./rest/rest-json.js";

/** What the seed API's routes need. */
export interface SeedRouteDeps {
  embedder: Embedder;
}

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
 * The compatibility routes of the seed "Embeddings API" (docs/REST.md),
 * each also under `/api/v1`:
 * - `POST /v1/embeddings/batch` {texts, model, provider, dimensions} ->
 *   {embeddings, model, provider, count}; `provider` other than `local`
 *   becomes `provider:model`, the gateway's spelling.
 * - `GET /v1/embeddings/models` -> {models, count, default_model}, models in the
 *   REST shape of ListModels; `GET /v1/embeddings/models/{model_id}` -> one
 *   model, found by id or alias (UNKNOWN_MODEL otherwise).
 * - `GET /v1/embeddings/health`: the health report, 200 only when healthy
 *   (degraded and unhealthy are 503, as the seed documents). Open.
 * - `POST /v1/embeddings/models/warmup` (admin) {models?: [...]} or {model}:
 *   loads each model (the default one when none is named) and embeds one short
 *   text with it -> {results: [{model, status: warm|failed, model_id,
 *   latency_ms | error}]}.
 */
export function createSeedRoutes(deps: SeedRouteDeps): HttpRoute[] {
  const { embedder } = deps;
  return [
    {
      method: "POST",
      path: "/v1/embeddings/batch",
      access: "user",
      async handle({ request: httpRequest, response, requestId, principal, readJson }) {
        const body = objectBody(await readJson());
        const model = optionalString(body, "model") ?? "";
        const providerHeader = httpRequest.headers[PROVIDER_HEADER];
        const provider = optionalString(body, "provider");
        const request = createEmbedRequest({
          requestId,
          principal,
          texts: stringList(body, "texts"),
          dimensions: optionalInteger(body, "dimensions"),
          model: provider !== undefined && provider !== "" && provider !== "local" ? `${provider}:${model}` : model,
          provider: typeof providerHeader === "string" ? providerHeader : undefined,
        });
        const result = await embedder.embed(request, clientGoneSignal(response));
        sendJson(response, 200, { ...timingHeaders(result.timings), ...providerHeaders(result.run) }, {
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
        const models = await embedder.listModels({});
        const rendered = modelsJson(models);
        sendJson(response, 200, {}, { models: rendered, count: rendered.length, default_model: embedder.health().defaultModel });
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
        sendJson(response, 200, {}, modelsJson([found])[0]);
      },
    },
    {
      method: "GET",
      path: "/v1/embeddings/health",
      access: "open",
      async handle({ response }) {
        const report = embedder.health();
        const json = messageToRestJson(GetHealthResponseSchema, create(GetHealthResponseSchema, toGetHealthResponse(report)));
        sendJson(response, report.state === "healthy" ? 200 : 503, {}, json);
      },
    },
    {
      method: "POST",
      path: "/v1/embeddings/models/warmup",
      access: "admin",
      async handle({ response, requestId, principal, readJson }) {
        const body = objectBody((await readJson()) ?? {});
        const names = Object.hasOwn(body, "models") ? stringList(body, "models") : [optionalString(body, "model") ?? ""];
        if (names.length > MAX_WARMUP_MODELS) throw invalid("models", `lists more than ${MAX_WARMUP_MODELS} models`);
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
  ];
}

function modelsJson(models: ModelDescription[]): JsonValue[] {
  const json = messageToRestJson(ListModelsResponseSchema, create(ListModelsResponseSchema, toListModelsResponse(models)));
  const list = (json as JsonObject).models;
  return Array.isArray(list) ? list : [];
}

/** Aborts when the client goes away before its answer is written. */
function clientGoneSignal(response: NodeResponse): AbortSignal {
  const controller = new AbortController();
  response.once("close", () => {
    if (!response.writableFinished) controller.abort();
  });
  return controller.signal;
}

function invalid(field: string, why: string): EmbedderError {
  return new EmbedderError("INVALID_ARGUMENT", `invalid request: field "${field}" ${why}`, { details: { field } });
}

function objectBody(body: JsonValue | undefined): JsonObject {
  if (body === null || body === undefined || typeof body !== "object" || Array.isArray(body)) {
    throw new EmbedderError("INVALID_ARGUMENT", "invalid request: the body must be a JSON object");
  }
  return body;
}

function optionalString(body: JsonObject, field: string): string | undefined {
  const value = Object.hasOwn(body, field) ? body[field] : null;
  if (value === null) return undefined;
  if (typeof value !== "string") throw invalid(field, "must be a string");
  return value;
}

function optionalInteger(body: JsonObject, field: string): number | undefined {
  const value = Object.hasOwn(body, field) ? body[field] : null;
  if (value === null) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value)) throw invalid(field, "must be an integer");
  return value;
}

function stringList(body: JsonObject, field: string): string[] {
  const value = Object.hasOwn(body, field) ? body[field] : null;
  if (value === null) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) throw invalid(field, "must be a list of strings");
  return value as string[];
}
