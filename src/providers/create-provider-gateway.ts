import { setTimeout as sleepFor } from "node:timers/promises";
import { ERROR_TABLE } from "../domain/error-table.js";
import { EmbedderError, type ErrorReason } from "../domain/errors.js";
import type { EmbedRequest, EmbedResult, HardwareProfileName, HealthReport } from "../domain/types.js";
import { applyInstruction, DEFAULT_TASK_PRESETS } from "../models/task-presets.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { UpstreamDeps, UpstreamProvider } from "./call-with-retries.js";
import { createCircuitBreaker, type BreakerSnapshot } from "./circuit-breaker.js";
import { embedUpstream } from "./embed-upstream.js";
import { LOCAL_PROVIDER, redactedProvidersConfig, type ProviderModel, type ProvidersConfig } from "./provider-config.js";
import { createProviderLimiter } from "./provider-limiter.js";
import { isProviderAllowed, routeRequest, type ProviderRoute, type RoutingRules } from "./route-request.js";
import { createUpstreamClient } from "./upstream-client.js";

/** Re-exported so that the gateway's users find the type of `route` beside the gateway. */
export type { ProviderRoute } from "./route-request.js";

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

/** The models the upstream providers serve, and who may use them, as the seed's model list shows them. */
export interface ProviderCatalog {
  /** Each provider's configured models, in file order; `allowed` = the allowlist lets requests use the provider. */
  models: Array<{ provider: string; model: string; allowed: boolean }>;
  /** `SUTRA_PROVIDER_ALLOWLIST`; empty = every provider is allowed. */
  allowlist: string[];
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
  /** The upstream models and the allowlist (the `local` entry's models are the server's own, listed by the registry). */
  catalog(): ProviderCatalog;
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

/**
 * Whether a provider's failure moves the request on to the next provider of
 * the chain. A retryable reason (the error table's column: the cause passes)
 * does, except SHUTTING_DOWN: the whole server is draining, so the request
 * ends rather than starts over. Two reasons that are not retryable do too,
 * because they concern the provider tried and not the request: a later try
 * of the same provider meets them again, another provider need not
 * (UPSTREAM_BAD_RESPONSE: this upstream answers wrong; MODEL_NOT_READY: the
 * local model of the chain is not downloaded or failed to load).
 */
function movesOn(reason: ErrorReason): boolean {
  if (reason === "UPSTREAM_BAD_RESPONSE" || reason === "MODEL_NOT_READY") return true;
  return ERROR_TABLE[reason].retryable && reason !== "SHUTTING_DOWN";
}

/** The request's texts with its prompt applied (the Qwen3 instruction format; `prompt_name` takes the task presets). */
function promptedTexts(request: EmbedRequest): string[] {
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
    return applyInstruction(preset, request.texts);
  }
  return applyInstruction(request.instruction, request.texts);
}

/** The error of a request no provider could serve. */
function finalError(failures: Array<{ provider: string; error: EmbedderError }>, skipped: string[]): EmbedderError {
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
}

/**
 * Creates the gateway over the configured providers: one client, limiter and
 * breaker per upstream provider, held for the gateway's life so that limits
 * and breaker state span requests. `route` is routeRequest over the
 * configuration; `embed` runs embedUpstream on each candidate of the chain
 * (a `local` one through `call.embedLocal`) while the failure moves on.
 */
export function createProviderGateway(options: ProviderGatewayOptions): ProviderGateway {
  const { config, metrics, logger } = options;
  const now = options.now ?? Date.now;
  const deps: UpstreamDeps = {
    metrics,
    logger,
    sleep: options.sleep ?? ((ms: number, signal?: AbortSignal) => sleepFor(ms, undefined, { signal })),
    random: options.random ?? Math.random,
  };
  const chain = options.fallbackChain ?? config.fallbackChain;
  const localEntry = config.providers.find((provider) => provider.type === "local");
  const upstream = new Map<string, UpstreamProvider>();
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
  const rules: RoutingRules = {
    upstream: [...upstream.values()].map((provider) => provider.config),
    fallbackChain: chain,
    allowlist: options.allowlist,
    isLocalModel: options.isLocalModel,
  };
  const allowed = (name: string) => isProviderAllowed(name, options.allowlist);
  const modelsOf = (name: string): ProviderModel[] => (name === LOCAL_PROVIDER ? localEntry?.models ?? [] : upstream.get(name)?.config.models ?? []);

  /** The model of `name` that may stand in for `wanted`, or undefined when none may. */
  const standIn = (name: string, wanted: ProviderModel, request: EmbedRequest): ProviderModel | undefined => {
    const models = modelsOf(name);
    const fits = (model: ProviderModel) => request.dimensions === 0 || upstream.get(name)?.config.type === "openai-compatible" || model.dimensions === request.dimensions;
    const equivalent = models.find((model) => model.group === wanted.group && model.dimensions === wanted.dimensions && fits(model));
    if (equivalent !== undefined || !request.allowCrossModelFallback) return equivalent;
    if (name === LOCAL_PROVIDER) return models[0] ?? { id: "", dimensions: 0, group: "" };
    return models.find(fits);
  };

  const view = (name: string, state: UpstreamProvider): ProviderBreakerView => ({ provider: name, ...state.breaker.snapshot() });

  return {
    route: (request) => routeRequest(request, rules),
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
          metrics.countFallback(previous, name);
          logger.warn({ from: previous, to: name, model: model.id || "(default)", requestId: request.requestId }, "falling back to the next provider");
        }
        try {
          const state = upstream.get(name);
          const result = state === undefined
            ? await call.embedLocal(model.id)
            : await embedUpstream(state, model, texts, request, call, deps);
          return {
            ...result,
            run: { ...result.run, provider: name, ...(name === target.provider ? {} : { fallbackFrom: target.provider }) },
          };
        } catch (reason) {
          const error = EmbedderError.from(reason);
          if (!movesOn(error.reason) || call.signal?.aborted) throw error;
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
    catalog: () => ({
      models: [...upstream.entries()].flatMap(([name, state]) => state.config.models.map((model) => ({ provider: name, model: model.id, allowed: allowed(name) }))),
      allowlist: [...options.allowlist],
    }),
  };
}
