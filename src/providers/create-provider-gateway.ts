import { performance } from "node:perf_hooks";
import { setTimeout as sleepFor } from "node:timers/promises";
import { EmbedderError, type ErrorReason } from "../domain/errors.js";
import type { EmbedRequest, EmbedResult, HardwareProfileName, HealthReport } from "../domain/types.js";
import { DEFAULT_TASK_PRESETS, formatInstruction } from "../models/task-presets.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { encodeEmbedding, normalizeInPlace } from "../postprocess/encode-embedding.js";
import { createCircuitBreaker, type BreakerSnapshot, type CircuitBreaker } from "./circuit-breaker.js";
import { LOCAL_PROVIDER, redactedProvidersConfig, type ProviderConfig, type ProviderModel, type ProvidersConfig } from "./provider-config.js";
import { createProviderLimiter, type ProviderLimiter } from "./provider-limiter.js";
import { backoffDelayMs } from "./retry-policy.js";
import { createUpstreamClient, UpstreamFailure, type UpstreamAnswer, type UpstreamClient } from "./upstream-client.js";

/** Where a request goes: `local` (the server's own models, `model` as the registry resolves it) or an upstream provider and one of its models. */
export interface ProviderRoute {
  provider: string;
  model: string;
}

/** What an upstream request needs from the pipeline. */
export interface GatewayCall {
  signal?: AbortSignal;
  /** Runs the request on a local model (a `local` entry of the fallback chain); "" = the default model. */
  embedLocal(model: string): Promise<EmbedResult>;
  /** The server's hardware profile, reported in the result. */
  hardwareProfile: HardwareProfileName;
}

/** One breaker as the admin route lists it. */
export interface ProviderBreakerView extends BreakerSnapshot {
  provider: string;
}

/**
 * The upstream providers of gateway mode (docs/PROVIDERS.md), plugged in at the
 * pipeline's model seam: `route` decides whether a request is local or for a
 * provider, `embed` runs a provider request with client-side limits,
 * retries, the breaker and fallback.
 */
export interface ProviderGateway {
  /**
   * Where a request goes: `provider:model` or the `x-provider` header names a
   * provider (`local` = the server's models); a bare model name that no local
   * model has but a provider serves goes to that provider (fallback chain
   * order first). UNKNOWN_MODEL for an unknown provider or a model the named
   * provider does not serve, FORBIDDEN for a provider off the allowlist,
   * INVALID_ARGUMENT when the header and the prefix disagree.
   */
  route(request: EmbedRequest): ProviderRoute;
  /**
   * Embeds on `route`'s provider; when it fails (unavailable, rate limited,
   * bad answer, breaker open) walks the fallback chain, only to providers
   * serving a model of the same group and dimensions unless the request set
   * `allow_cross_model_fallback`. The result names the provider that produced
   * the vectors and, after a fallback, the one first asked (`fallbackFrom`).
   */
  embed(request: EmbedRequest, route: ProviderRoute, call: GatewayCall): Promise<EmbedResult>;
  /** The providers check of health: unhealthy while a breaker is not closed. */
  healthChecks(): HealthReport["checks"]["providers"];
  breakers(): ProviderBreakerView[];
  /** Closes a provider's breaker (UNKNOWN_MODEL for an unknown provider). */
  resetBreaker(provider: string): ProviderBreakerView;
  /** The configuration with keys redacted, for the admin route. */
  describeConfig(): Record<string, unknown>;
}

/** Options of the gateway. */
export interface ProviderGatewayOptions {
  config: ProvidersConfig;
  /** Replaces the file's fallback chain when given (`EMBEDDINGS_FALLBACK_CHAIN`). */
  fallbackChain?: string[];
  /** Providers requests may use (`SUTRA_PROVIDER_ALLOWLIST`); empty = all. `local` is always allowed. */
  allowlist: string[];
  /** Whether a bare model name is one the local registry knows (it then stays local). */
  isLocalModel(name: string): boolean;
  metrics: Metrics;
  logger: Logger;
  /** Injected in tests: clock, sleep between retries, jitter, HTTP. */
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
  fetch?: typeof fetch;
}

/** Reasons a request moves on to the next provider of the chain. */
const FALLBACK_REASONS: ReadonlySet<ErrorReason> = new Set([
  "UPSTREAM_UNAVAILABLE",
  "UPSTREAM_BAD_RESPONSE",
  "RATE_LIMITED",
  "MODEL_NOT_READY",
  "WORKER_FAILED",
  "OVERLOADED",
]);

/** Upstream 4xx statuses that mean the request itself was refused (no retry, no breaker failure): INVALID_ARGUMENT. */
const REQUEST_REFUSED = new Set([400, 413, 422]);

interface ProviderState {
  config: ProviderConfig;
  client: UpstreamClient;
  limiter: ProviderLimiter;
  breaker: CircuitBreaker;
}

/** Creates the gateway over the configured providers. */
export function createProviderGateway(options: ProviderGatewayOptions): ProviderGateway {
  const { config, metrics, logger } = options;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number, signal?: AbortSignal) => sleepFor(ms, undefined, { signal }));
  const random = options.random ?? Math.random;
  const chain = options.fallbackChain ?? config.fallbackChain;
  const allowed = (name: string) => name === LOCAL_PROVIDER || options.allowlist.length === 0 || options.allowlist.includes(name);
  const localEntry = config.providers.find((provider) => provider.type === "local");
  const upstream = new Map<string, ProviderState>();
  for (const provider of config.providers) {
    if (provider.type === "local") continue;
    upstream.set(provider.name, {
      config: provider,
      client: createUpstreamClient(provider, config.keyOf(provider.name), options.fetch),
      limiter: createProviderLimiter({
        provider: provider.name, rpm: provider.rpm, tpm: provider.tpm, concurrency: provider.concurrency, timeoutMs: provider.timeoutMs, now,
      }),
      breaker: createCircuitBreaker({
        failures: provider.breaker.failures,
        cooldownMs: provider.breaker.cooldownMs,
        now,
        onChange: (state) => logger.warn({ provider: provider.name, breaker: state }, `provider ${provider.name}: circuit breaker ${state}`),
      }),
    });
  }

  const modelsOf = (name: string): ProviderModel[] => (name === LOCAL_PROVIDER ? localEntry?.models ?? [] : upstream.get(name)?.config.models ?? []);

  const route = (request: EmbedRequest): ProviderRoute => {
    const header = request.provider?.trim() ?? "";
    let model = request.model;
    let prefix = "";
    const colon = model.indexOf(":");
    if (colon > 0) {
      const candidate = model.slice(0, colon);
      if (candidate === LOCAL_PROVIDER || upstream.has(candidate)) {
        prefix = candidate;
        model = model.slice(colon + 1);
      }
    }
    if (header !== "" && prefix !== "" && header !== prefix) {
      throw new EmbedderError("INVALID_ARGUMENT", `the x-provider header names "${header}" but the model names provider "${prefix}"`, {
        details: { field: "model", provider: header },
      });
    }
    let provider = header || prefix;
    if (provider === "" && model !== "" && !options.isLocalModel(model)) {
      const serving = [...chain, ...upstream.keys()].find((name) => name !== LOCAL_PROVIDER && allowed(name) && modelsOf(name).some((entry) => entry.id === model));
      if (serving !== undefined) provider = serving;
    }
    if (provider === "" || provider === LOCAL_PROVIDER) return { provider: LOCAL_PROVIDER, model };
    const state = upstream.get(provider);
    if (state === undefined) {
      throw new EmbedderError("UNKNOWN_MODEL", `unknown provider "${provider}"`, {
        details: { provider, supported: [LOCAL_PROVIDER, ...upstream.keys()] },
      });
    }
    if (!allowed(provider)) {
      throw new EmbedderError("FORBIDDEN", `provider "${provider}" is not allowed on this server`, { details: { provider } });
    }
    const entry = model === "" ? state.config.models[0] : state.config.models.find((candidate) => candidate.id === model);
    if (entry === undefined) {
      throw new EmbedderError("UNKNOWN_MODEL", `provider "${provider}" serves no model "${model}"`, {
        details: { provider, model, supported: state.config.models.map((candidate) => candidate.id) },
      });
    }
    return { provider, model: entry.id };
  };

  /** The model of `name` that may stand in for `wanted`, or undefined when none may. */
  const standIn = (name: string, wanted: ProviderModel, request: EmbedRequest): ProviderModel | undefined => {
    const models = modelsOf(name);
    const fits = (model: ProviderModel) => request.dimensions === 0 || upstream.get(name)?.config.type === "openai-compatible" || model.dimensions === request.dimensions;
    const equivalent = models.find((model) => model.group === wanted.group && model.dimensions === wanted.dimensions && fits(model));
    if (equivalent !== undefined || !request.allowCrossModelFallback) return equivalent;
    if (name === LOCAL_PROVIDER) return models[0] ?? { id: "", dimensions: 0, group: "" };
    return models.find(fits);
  };

  const failureReason = (failure: UpstreamFailure): string => {
    if (failure.kind !== "http") return failure.kind;
    if (failure.status === 429) return "rate_limited";
    return (failure.status ?? 500) >= 500 ? "server_error" : "client_error";
  };

  const toEmbedderError = (provider: string, failure: UpstreamFailure, attempts: number): EmbedderError => {
    const details = { provider, attempts, ...(failure.status === undefined ? {} : { upstream_status: failure.status }) };
    if (failure.kind === "bad_response") {
      return new EmbedderError("UPSTREAM_BAD_RESPONSE", `provider ${provider} sent an answer that is not a valid embeddings response`, { details, cause: failure });
    }
    if (failure.status === 429) {
      return new EmbedderError("RATE_LIMITED", `provider ${provider} is rate limiting requests (HTTP 429)`, {
        details, retryAfterMs: failure.retryAfterMs ?? 1000, cause: failure,
      });
    }
    if (failure.status !== undefined && REQUEST_REFUSED.has(failure.status)) {
      return new EmbedderError("INVALID_ARGUMENT", `provider ${provider} refused the request (HTTP ${failure.status})`, { details, cause: failure });
    }
    const what = failure.kind === "http" ? `answered HTTP ${failure.status}` : failure.kind === "timeout" ? "did not answer in time" : "could not be reached";
    return new EmbedderError("UPSTREAM_UNAVAILABLE", `provider ${provider} ${what}`, {
      details, ...(failure.retryAfterMs === undefined ? {} : { retryAfterMs: failure.retryAfterMs }), cause: failure,
    });
  };

  const breakerOpen = (state: ProviderState, model: string): EmbedderError => {
    metrics.providerFailuresTotal.inc({ provider: state.config.name, model, reason: "breaker_open" });
    return new EmbedderError("UPSTREAM_UNAVAILABLE", `provider ${state.config.name} is unavailable (circuit breaker open)`, {
      details: { provider: state.config.name, breaker: "open" },
      retryAfterMs: Math.max(1000, state.breaker.snapshot().retryInMs),
    });
  };

  /** One batch of texts, with retries: 429, 5xx, timeouts and network errors only; a Retry-After is waited out up to backoff.max_ms. */
  const callWithRetries = async (
    state: ProviderState,
    model: ProviderModel,
    texts: string[],
    upstreamDimensions: number | undefined,
    probing: boolean,
    signal: AbortSignal,
  ): Promise<{ answer: UpstreamAnswer; waitedMs: number }> => {
    const { name, retries, backoff } = state.config;
    const expectedDimensions = upstreamDimensions ?? model.dimensions;
    let waitedMs = 0;
    for (let attempt = 0; ; attempt++) {
      if (!state.breaker.allows(probing)) throw breakerOpen(state, model.id);
      let slot;
      try {
        slot = await state.limiter.acquire(texts, signal);
      } catch (error) {
        if (error instanceof EmbedderError && error.reason === "RATE_LIMITED") {
          metrics.providerFailuresTotal.inc({ provider: name, model: model.id, reason: "no_slot" });
        }
        throw error;
      }
      waitedMs += slot.waitedMs;
      const started = performance.now();
      let answer: UpstreamAnswer;
      try {
        answer = await state.client.embed({ texts, model: model.id, ...(upstreamDimensions === undefined ? {} : { dimensions: upstreamDimensions }), signal });
        slot.release(answer.promptTokens);
      } catch (error) {
        slot.release();
        metrics.upstreamSeconds.observe({ provider: name, outcome: "error" }, (performance.now() - started) / 1000);
        if (signal.aborted || !(error instanceof UpstreamFailure)) throw error;
        const reason = failureReason(error);
        metrics.providerFailuresTotal.inc({ provider: name, model: model.id, reason });
        const refused = error.status !== undefined && REQUEST_REFUSED.has(error.status);
        if (!refused && error.status !== 429) state.breaker.recordFailure();
        const retryable = error.kind === "timeout" || error.kind === "network" || error.status === 429 || (error.status ?? 0) >= 500;
        const delayMs = error.retryAfterMs ?? backoffDelayMs(attempt, backoff, random);
        const retrying = retryable && attempt < retries && delayMs <= Math.max(backoff.maxMs, backoff.baseMs);
        logger.warn(
          { provider: name, model: model.id, attempt: attempt + 1, reason, detail: error.detail, ...(retrying ? { retryInMs: delayMs } : {}) },
          `provider ${name}: upstream call failed${retrying ? "; retrying" : ""}`,
        );
        if (!retrying) throw toEmbedderError(name, error, attempt + 1);
        await sleep(delayMs, signal);
        continue;
      }
      metrics.upstreamSeconds.observe({ provider: name, outcome: "ok" }, (performance.now() - started) / 1000);
      const wrongSize = answer.vectors.findIndex((vector) => vector.length !== expectedDimensions);
      if (answer.vectors.length !== texts.length || wrongSize !== -1) {
        metrics.providerFailuresTotal.inc({ provider: name, model: model.id, reason: "bad_response" });
        state.breaker.recordFailure();
        const problem: Record<string, number> = answer.vectors.length !== texts.length
          ? { expected_count: texts.length, count: answer.vectors.length }
          : { expected_dimensions: expectedDimensions, dimensions: answer.vectors[wrongSize].length, index: wrongSize };
        logger.warn({ provider: name, model: model.id, ...problem }, `provider ${name}: wrong number or size of vectors`);
        throw new EmbedderError(
          "UPSTREAM_BAD_RESPONSE",
          answer.vectors.length !== texts.length
            ? `provider ${name} returned ${answer.vectors.length} vectors for ${texts.length} texts`
            : `provider ${name} returned a vector of ${answer.vectors[wrongSize].length} dimensions; ${model.id} has ${expectedDimensions}`,
          { details: { provider: name, model: model.id, ...problem } },
        );
      }
      state.breaker.recordSuccess();
      return { answer, waitedMs };
    }
  };

  /** A request on one upstream provider: split to its max batch, at most `concurrency` batches in flight, reassembled in order. */
  const embedUpstream = async (state: ProviderState, model: ProviderModel, texts: string[], request: EmbedRequest, call: GatewayCall): Promise<EmbedResult> => {
    const started = performance.now();
    const { name, type, maxBatch, concurrency } = state.config;
    if (request.dimensions !== 0 && (request.dimensions > model.dimensions || (type !== "openai-compatible" && request.dimensions !== model.dimensions))) {
      throw new EmbedderError("INVALID_DIMENSIONS", `provider ${name} serves ${model.id} at ${model.dimensions} dimensions only`, {
        details: { dimensions: request.dimensions, supported: [model.dimensions] },
      });
    }
    const upstreamDimensions = request.dimensions !== 0 && request.dimensions !== model.dimensions ? request.dimensions : undefined;
    const result = (embeddings: EmbedResult["embeddings"], promptTokens: number, queueMs: number): EmbedResult => {
      const totalMs = performance.now() - started;
      return {
        embeddings,
        run: { modelId: model.id, name: model.id, dimensions: upstreamDimensions ?? model.dimensions, qualityScore: 0, sizeMb: 0, precision: "remote", executionProvider: type, provider: name },
        timings: { totalMs, tokenizationMs: 0, queueMs, inferenceMs: Math.max(0, totalMs - queueMs) },
        promptTokens,
        truncatedInputs: [],
        hardwareProfile: call.hardwareProfile,
        dimensionsPolicy: upstreamDimensions === undefined ? "native" : "upstream",
      };
    };
    // A stream checking its settings sends no texts: nothing goes upstream.
    if (texts.length === 0) return result([], 0, 0);
    const admission = state.breaker.admit();
    if (admission === "reject") throw breakerOpen(state, model.id);
    const probing = admission === "probe";
    const stop = new AbortController();
    const onAbort = () => stop.abort(call.signal?.reason);
    call.signal?.addEventListener("abort", onAbort, { once: true });
    if (call.signal?.aborted) onAbort();
    const vectors = new Array<Float32Array>(texts.length);
    let reported = 0;
    let allReported = true;
    let queueMs = 0;
    let next = 0;
    let failure: unknown;
    const worker = async () => {
      while (next < texts.length && failure === undefined) {
        const offset = next;
        next += maxBatch;
        try {
          const { answer, waitedMs } = await callWithRetries(state, model, texts.slice(offset, offset + maxBatch), upstreamDimensions, probing, stop.signal);
          answer.vectors.forEach((vector, index) => {
            vectors[offset + index] = vector;
          });
          if (answer.promptTokens === undefined) allReported = false;
          else reported += answer.promptTokens;
          queueMs = Math.max(queueMs, waitedMs);
        } catch (error) {
          if (failure === undefined) {
            failure = error;
            stop.abort(error);
          }
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(concurrency, Math.ceil(texts.length / maxBatch)) }, worker));
    } finally {
      call.signal?.removeEventListener("abort", onAbort);
      if (probing) state.breaker.endProbe();
    }
    if (failure !== undefined) {
      if (call.signal?.aborted) throw new EmbedderError("CANCELLED", "the request was cancelled", { cause: failure });
      throw failure;
    }
    const embeddings = vectors.map((vector) => encodeEmbedding(request.normalize ? normalizeInPlace(vector) : vector, request.embeddingTypes));
    const answered = result(embeddings, allReported ? reported : state.limiter.estimateTokens(texts), queueMs);
    metrics.embeddingsTotal.inc({ model: `${name}:${model.id}`, precision: "remote" }, texts.length);
    metrics.stageSeconds.observe({ stage: "total" }, answered.timings.totalMs / 1000);
    return answered;
  };

  /** The request's texts with its prompt applied (the Qwen3 instruction format; `prompt_name` takes the task presets). */
  const promptedTexts = (request: EmbedRequest): string[] => {
    if (request.tokenIds !== undefined) {
      throw new EmbedderError("INVALID_ARGUMENT", "token arrays can only be embedded by local models", { details: { field: "input" } });
    }
    if (request.promptName && request.instruction) {
      throw new EmbedderError("INVALID_ARGUMENT", "send either prompt_name or instruction, not both", { details: { field: "prompt_name" } });
    }
    if (request.promptName) {
      const preset = Object.hasOwn(DEFAULT_TASK_PRESETS, request.promptName) ? DEFAULT_TASK_PRESETS[request.promptName] : undefined;
      if (preset === undefined) {
        throw new EmbedderError("INVALID_ARGUMENT", `upstream models take the task presets as prompt_name, not "${request.promptName}"`, {
          details: { field: "prompt_name", supported: Object.keys(DEFAULT_TASK_PRESETS) },
        });
      }
      return request.texts.map((text) => formatInstruction(preset, text));
    }
    return request.instruction ? request.texts.map((text) => formatInstruction(request.instruction ?? "", text)) : request.texts;
  };

  /** The error of a request no provider could serve. */
  const finalError = (failures: Array<{ provider: string; error: EmbedderError }>, skipped: string[]): EmbedderError => {
    const note = skipped.length === 0
      ? ""
      : `; not tried: ${skipped.join(", ")} (no equivalent model, or not allowed; a request may opt in with allow_cross_model_fallback)`;
    if (failures.length === 1) {
      const { error } = failures[0];
      return new EmbedderError(error.reason, error.message + note, {
        details: { ...error.details, ...(skipped.length === 0 ? {} : { skipped_providers: skipped }) },
        ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
        cause: error,
      });
    }
    const reasons = failures.map((failure) => failure.error.reason);
    const same = reasons.every((reason) => reason === reasons[0]);
    const waits = failures.map((failure) => failure.error.retryAfterMs).filter((wait): wait is number => wait !== undefined);
    return new EmbedderError(
      same ? reasons[0] : "UPSTREAM_UNAVAILABLE",
      `every provider failed: ${failures.map((failure) => `${failure.provider} (${failure.error.message})`).join("; ")}${note}`,
      {
        details: { providers: failures.map((failure) => failure.provider), reasons, ...(skipped.length === 0 ? {} : { skipped_providers: skipped }) },
        ...(waits.length === 0 ? {} : { retryAfterMs: Math.min(...waits) }),
        cause: failures[0].error,
      },
    );
  };

  const view = (name: string, state: ProviderState): ProviderBreakerView => ({ provider: name, ...state.breaker.snapshot() });

  return {
    route,
    async embed(request, target, call) {
      const primary = upstream.get(target.provider);
      const wanted = primary?.config.models.find((model) => model.id === target.model);
      if (primary === undefined || wanted === undefined) throw new EmbedderError("INTERNAL", "internal error: unrouted provider request");
      const texts = promptedTexts(request);
      const candidates = [target.provider, ...chain.filter((name) => name !== target.provider)];
      const failures: Array<{ provider: string; error: EmbedderError }> = [];
      const skipped: string[] = [];
      let previous = target.provider;
      for (const name of candidates) {
        const model = name === target.provider ? wanted : allowed(name) ? standIn(name, wanted, request) : undefined;
        if (model === undefined) {
          skipped.push(name);
          continue;
        }
        if (name !== target.provider) {
          metrics.fallbacksTotal.inc({ from_provider: previous, to_provider: name });
          logger.warn({ from: previous, to: name, model: model.id || "(default)", requestId: request.requestId }, "falling back to the next provider");
        }
        try {
          const state = upstream.get(name);
          const result = state === undefined
            ? await call.embedLocal(model.id)
            : await embedUpstream(state, model, texts, request, call);
          return {
            ...result,
            run: { ...result.run, provider: name, ...(name === target.provider ? {} : { fallbackFrom: target.provider }) },
          };
        } catch (reason) {
          const error = EmbedderError.from(reason);
          if (!FALLBACK_REASONS.has(error.reason) || call.signal?.aborted) throw error;
          failures.push({ provider: name, error });
          previous = name;
        }
      }
      throw finalError(failures, skipped);
    },
    healthChecks: () => [...upstream.entries()].map(([name, state]) => {
      const breakerState = state.breaker.snapshot().state;
      return { name, breakerState, healthy: breakerState === "closed" };
    }),
    breakers: () => [...upstream.entries()].map(([name, state]) => view(name, state)),
    resetBreaker(name) {
      const state = upstream.get(name);
      if (state === undefined) {
        throw new EmbedderError("UNKNOWN_MODEL", `unknown provider "${name}"`, { details: { provider: name, supported: [...upstream.keys()] } });
      }
      state.breaker.reset();
      logger.info({ provider: name }, `provider ${name}: circuit breaker reset`);
      return view(name, state);
    },
    describeConfig: () => ({ ...redactedProvidersConfig(config, options.allowlist), fallback_chain: chain }),
  };
}
