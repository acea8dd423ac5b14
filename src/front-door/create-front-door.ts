import { performance } from "node:perf_hooks";
import type { RateLimiter } from "../admission/rate-limit.js";
import { EmbedderError } from "../domain/errors.js";
import type { EmbedPlan, EmbedRequest, EmbedResult, EmbedStreamItem, Embedder, HardwareProfileName } from "../domain/types.js";
import type { HealthReporter } from "../engine/create-health-reporter.js";
import type { LocalEngine } from "../engine/create-local-engine.js";
import type { FailureCounter } from "../observability/count-failure.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { ProviderGateway, ProviderRoute } from "../providers/create-provider-gateway.js";
import { LOCAL_PROVIDER } from "../providers/provider-config.js";
import { createAccessLog } from "./access-log.js";
import { validateEmbedRequest, validateEmbedSettings, type RequestLimits } from "./validate-request.js";

/** The model rpcs the front door passes through: ListModels, and GetModel and DownloadModel where models are managed. */
export type ModelCatalog = Pick<Embedder, "listModels" | "getModel" | "downloadModel">;

/** What the front door needs. */
export interface FrontDoorDeps {
  engine: Pick<LocalEngine, "embed" | "check" | "idle" | "checkRoom">;
  models: ModelCatalog;
  health: Pick<HealthReporter, "record" | "report">;
  /** The server's hardware tier (reported by answers from upstream providers). */
  hardwareProfile: HardwareProfileName;
  /** Upstream providers (gateway mode, docs/PROVIDERS.md); absent = local models only. */
  providers?: ProviderGateway;
  rateLimiter: RateLimiter;
  limits: RequestLimits & {
    /** Most online embedding requests in flight at once (`SUTRA_MAX_CONCURRENCY`); 0 = no limit. */
    maxConcurrency: number;
  };
  failures: FailureCounter;
  logger: Logger;
  metrics: Metrics;
}

/** The front door plus the lifecycle hooks `main` uses. */
export interface FrontDoor extends Embedder {
  /** From now on new requests get SHUTTING_DOWN and health is unhealthy. */
  beginShutdown(): void;
  /** Resolves when no accepted request is in flight any more and no batch runs (cancelled callers' included). */
  drained(): Promise<void>;
}

/** Wait suggested to a request turned away by the concurrency limit or a shutdown. */
const RETRY_AFTER_MS = 1000;

/**
 * The one interface every transport calls (TEI's `Infer`). For each request
 * it validates (validateEmbedRequest), admits (SHUTTING_DOWN during a drain;
 * OVERLOADED at once beyond `maxConcurrency` online requests, as TEI's
 * semaphore does, rather than queueing; queue room is the engine's first
 * check), routes (an upstream provider in gateway mode, else the local
 * engine), runs, and then charges the tokens used to the caller's
 * tokens-per-minute bucket and writes the access log. Every failure is
 * counted here, once. Background requests (document jobs) skip the
 * concurrency limit and the charge: the job service has limits of its own.
 */
export function createFrontDoor(deps: FrontDoorDeps): FrontDoor {
  const { engine, metrics, failures } = deps;
  const accessLog = createAccessLog(deps.logger);
  const inFlight = { online: 0, background: 0 };
  /** Online requests admitted early (`reserve`) whose body is still being read: counted as one queued text each. */
  let reservations = 0;
  let shuttingDown = false;
  let drainWaiters: Array<() => void> = [];
  metrics.observeRequestsInFlight(() => inFlight.online + inFlight.background);

  const refuseWhileShuttingDown = (): void => {
    if (shuttingDown) throw new EmbedderError("SHUTTING_DOWN", "the server is shutting down", { retryAfterMs: RETRY_AFTER_MS });
  };

  /** OVERLOADED while `maxConcurrency` online requests are in flight, `pending` more counted as if they were. */
  const concurrencyRefusal = (pending = 0): EmbedderError | undefined => {
    const { maxConcurrency } = deps.limits;
    if (maxConcurrency === 0 || inFlight.online + pending < maxConcurrency) return undefined;
    return new EmbedderError("OVERLOADED", `the server is at its limit of ${maxConcurrency} concurrent requests`, {
      details: { limit: maxConcurrency },
      retryAfterMs: RETRY_AFTER_MS,
    });
  };

  /** Where a request goes: the local engine (with the model the route names) or an upstream provider. */
  const routeOf = (request: EmbedRequest): { local: EmbedRequest } | { upstream: ProviderRoute; providers: ProviderGateway } => {
    const target = deps.providers?.route(request);
    if (deps.providers === undefined || target === undefined || target.provider === LOCAL_PROVIDER) {
      return { local: target === undefined ? request : { ...request, model: target.model } };
    }
    return { upstream: target, providers: deps.providers };
  };

  /** Runs a request on the local engine, or on the provider its route names. */
  const route = async (request: EmbedRequest, signal?: AbortSignal, onItem?: (item: EmbedStreamItem) => void): Promise<EmbedResult> => {
    const routed = routeOf(request);
    if ("local" in routed) return engine.embed(routed.local, signal, onItem);
    const result = await routed.providers.embed(request, routed.upstream, {
      signal,
      hardwareProfile: deps.hardwareProfile,
      embedLocal: (model) => engine.embed({ ...request, model, provider: undefined }, signal),
    });
    // An upstream answer comes whole (a fallback may restart it elsewhere): its items are told once it is in.
    if (onItem) {
      const characters = Math.max(1, request.texts.reduce((sum, text) => sum + text.length, 0));
      result.embeddings.forEach((embedding, index) => onItem({
        index, embedding, tokens: Math.max(1, Math.round((result.promptTokens * request.texts[index].length) / characters)), run: result.run,
      }));
    }
    return result;
  };

  const run = async (request: EmbedRequest, signal?: AbortSignal, onItem?: (item: EmbedStreamItem) => void): Promise<EmbedResult> => {
    const priority = request.priority ?? "online";
    try {
      validateEmbedRequest(request, deps.limits);
      refuseWhileShuttingDown();
      const atLimit = priority === "online" ? concurrencyRefusal() : undefined;
      if (atLimit !== undefined) throw atLimit;
    } catch (error) {
      request.admission?.release();
      failures(error);
      throw error;
    }
    inFlight[priority]++;
    const started = performance.now();
    try {
      const result = await route(request, signal, onItem);
      deps.health.record(performance.now() - started);
      if (priority === "online") {
        deps.rateLimiter.charge(request.principal?.id ?? "anonymous", result.promptTokens);
        metrics.countPromptTokens(result.run.modelId, result.promptTokens);
        accessLog(request, result);
      }
      return result;
    } catch (error) {
      failures(error);
      throw error;
    } finally {
      request.admission?.release();
      inFlight[priority]--;
      if (inFlight.online + inFlight.background === 0) {
        for (const waiter of drainWaiters) waiter();
        drainWaiters = [];
      }
    }
  };

  /** Online requests are the guide's `embedding_requests_total`; document-job batches are not client requests. */
  const timed = <T>(request: EmbedRequest, pending: Promise<T>): Promise<T> =>
    request.priority === "background" ? pending : metrics.timeEmbeddingRequest(pending);

  return {
    embed: (request, signal) => timed(request, run(request, signal)),
    async embedStream(request, onItem, signal) {
      const { embeddings: _none, ...result } = await timed(request, run(request, signal, onItem));
      return result;
    },
    async check(request): Promise<EmbedPlan> {
      try {
        validateEmbedSettings(request);
        refuseWhileShuttingDown();
        const routed = routeOf(request);
        if ("local" in routed) return await engine.check(routed.local);
        // No texts: the gateway resolves the provider's model and sends nothing upstream.
        const answer = await routed.providers.embed({ ...request, texts: [] }, routed.upstream, {
          hardwareProfile: deps.hardwareProfile,
          embedLocal: (model) => engine.embed({ ...request, texts: [], model, provider: undefined }),
        });
        return { run: answer.run, hardwareProfile: answer.hardwareProfile, dimensionsPolicy: answer.dimensionsPolicy };
      } catch (error) {
        failures(error);
        throw error;
      }
    },
    reserve() {
      // During a drain the request's own run answers SHUTTING_DOWN; with providers configured it may route upstream.
      if (shuttingDown || deps.providers !== undefined) return { release: () => undefined };
      try {
        const atLimit = concurrencyRefusal(reservations);
        if (atLimit !== undefined) throw atLimit;
        engine.checkRoom(1, reservations);
      } catch (error) {
        failures(error);
        return { refused: EmbedderError.from(error) };
      }
      reservations++;
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          reservations--;
        },
      };
    },
    health: () => deps.health.report(shuttingDown),
    listModels: (filter) => deps.models.listModels(filter),
    ...(deps.models.getModel === undefined ? {} : { getModel: deps.models.getModel }),
    ...(deps.models.downloadModel === undefined ? {} : { downloadModel: deps.models.downloadModel }),
    beginShutdown() {
      shuttingDown = true;
    },
    async drained() {
      await new Promise<void>((resolve) => {
        if (inFlight.online + inFlight.background === 0) resolve();
        else drainWaiters.push(resolve);
      });
      // A batch whose callers all cancelled (a dropped stream) may still be running in a worker; closing the pool under it aborts the process.
      await engine.idle();
    },
  };
}
