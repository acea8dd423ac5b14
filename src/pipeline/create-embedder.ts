import { performance } from "node:perf_hooks";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { createBatcher } from "../batching/create-batcher.js";
import { embeddingCacheKey, type CachedEmbedding, type EmbeddingCache } from "../cache/embedding-cache.js";
import { EmbedderError } from "../domain/errors.js";
import type {
  EmbedRequest,
  EmbedResult,
  EmbedStreamItem,
  Embedder,
  EmbeddingType,
  HealthReport,
  RunInfo,
} from "../domain/types.js";
import { resolveHardwareProfile, type HardwareProfile } from "../inference/hardware-profile.js";
import type { InferencePool } from "../inference/pool.js";
import type { InferenceResult, InferenceTask } from "../inference/task.js";
import type { ModelManifest } from "../models/manifest.js";
import type { ModelChoice, ModelRegistry } from "../models/registry.js";
import { selectVariant } from "../models/select-variant.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { ProviderGateway } from "../providers/create-provider-gateway.js";
import { LOCAL_PROVIDER } from "../providers/provider-config.js";
import { encodeEmbedding, normalizeInPlace } from "../postprocess/encode-embedding.js";
import { resolveDimensions } from "../postprocess/resolve-dimensions.js";
import type { Encoding, Tokenizer } from "../tokenize/index.js";
import { encodeTokenIds } from "./encode-token-ids.js";
import { prepareTexts } from "./prepare-texts.js";

/** What the pipeline needs from the rest of the service. */
export interface EmbedderDeps {
  registry: ModelRegistry;
  pool: InferencePool;
  /** The server's profile: worker count, threads, batch limits, default precision policy. */
  profile: HardwareProfile;
  /** Whether the CUDA execution provider opened a session on this host (probed at start). */
  cudaAvailable: boolean;
  /** Most texts waiting for a batch; beyond it requests get OVERLOADED at once. */
  maxQueue: number;
  version: string;
  logger: Logger;
  metrics: Metrics;
  /** Embedding cache (hits skip tokenization and inference); absent = off. */
  cache?: EmbeddingCache;
  /** Upstream providers (gateway mode, docs/PROVIDERS.md); absent = local models only. */
  providers?: ProviderGateway;
}

/** How long health stays degraded after a worker was replaced. */
const WORKER_RECOVERY_MS = 5_000;

/** The pipeline plus lifecycle hooks main uses. */
export interface EmbedderService extends Embedder {
  /** From now on new requests get SHUTTING_DOWN and health is unhealthy. */
  beginShutdown(): void;
  /** Resolves when no accepted request is in the pipeline any more and no batch runs (cancelled callers' included). */
  drained(): Promise<void>;
}

interface BatchContext {
  modelFile: string;
  manifest: ModelManifest;
  tokenizer: Tokenizer;
  executionProviders: string[];
}

type QueuedText = Encoding & { key: string };

const LATENCY_WINDOW = 256;
/** Texts tokenized between yields to the event loop, so a 2,048-text request does not stall other clients. */
const TOKENIZE_SLICE = 64;

async function tokenizeAll(tokenizer: Tokenizer, texts: string[], truncate: EmbedRequest["truncate"]): Promise<Encoding[]> {
  const encodings: Encoding[] = [];
  for (let start = 0; start < texts.length; start += TOKENIZE_SLICE) {
    if (start > 0) await yieldToEventLoop();
    encodings.push(...tokenizer.encodeBatch(texts.slice(start, start + TOKENIZE_SLICE), { truncate }));
  }
  return encodings;
}

/** The health report's cache section. */
function cacheReport(cache: EmbeddingCache | undefined): HealthReport["cache"] {
  if (!cache) return { enabled: false, entries: 0, hits: 0, misses: 0, maxEntries: 0, ttlSeconds: 0 };
  const stats = cache.stats();
  return { enabled: stats.maxSize > 0, entries: stats.size, hits: stats.hits, misses: stats.misses, maxEntries: stats.maxSize, ttlSeconds: stats.ttlSeconds };
}

/**
 * Creates the one embedding pipeline every transport calls: model resolution,
 * prompts, tokenization with truncation, the shared batcher (batches mix
 * requests by token budget) on the worker pool, then dimensions, normalisation
 * and output encodings, in input order.
 */
export function createEmbedder(deps: EmbedderDeps): EmbedderService {
  const startedAt = Date.now();
  const recent: Array<{ at: number; latencyMs: number }> = [];
  let shuttingDown = false;

  const { profile, metrics } = deps;
  /** The server was configured for CUDA (flag or profile) and runs on CPU: a degraded cause. A request's own profile never sets it. */
  const cudaConfiguredWithoutGpu = profile.wantsCuda && !deps.cudaAvailable;

  /** Runs a batch; a batch whose worker died is retried once on the replacement. */
  const runWithRetry = async (task: InferenceTask): Promise<InferenceResult> => {
    try {
      return await deps.pool.run(task);
    } catch (error) {
      if (!(error instanceof EmbedderError) || error.reason !== "WORKER_FAILED") throw error;
      deps.logger.warn({ err: error.cause }, "inference worker failed; retrying the batch once");
      return deps.pool.run(task);
    }
  };

  const batcher = createBatcher<QueuedText, BatchContext>({
    maxInFlight: profile.workers,
    maxBatchSize: profile.maxBatchSize,
    tokenBudget: profile.tokenBudget,
    maxQueue: deps.maxQueue,
    onCancelled: (items) => metrics.cancelledTextsTotal.inc(items),
    async run({ items, context }) {
      const padded = context.tokenizer.pad(items);
      const dims = [padded.batchSize, padded.sequenceLength];
      metrics.batchSize.observe(padded.batchSize);
      metrics.batchTokens.observe(padded.batchSize * padded.sequenceLength);
      metrics.inferenceBatchesTotal.inc();
      const result = await runWithRetry({
        modelFile: context.modelFile,
        inputs: {
          input_ids: { data: padded.inputIds, dims },
          attention_mask: { data: padded.attentionMask, dims },
          token_type_ids: { data: new BigInt64Array(padded.inputIds.length), dims },
          position_ids: { data: padded.positionIds, dims },
        },
        output: context.manifest.output,
        pooling: context.manifest.pooling,
        settings: { intraOpThreads: profile.intraOpThreads, executionProviders: context.executionProviders },
      });
      const vectors = items.map((_, row) => result.embeddings.slice(row * result.dimensions, (row + 1) * result.dimensions));
      return { vectors, inferenceMs: result.inferenceMs, executionProvider: result.executionProvider };
    },
  });

  let active = 0;
  let drainWaiters: Array<() => void> = [];
  metrics.observeQueueDepth(() => batcher.queueDepth());

  if (cudaConfiguredWithoutGpu) deps.logger.warn("CUDA execution provider requested but unavailable on this host; running on CPU");

  /** Admits a call unless shutting down, and counts it until it settles (for draining and failure metrics). */
  const admit = async (work: () => Promise<EmbedResult>): Promise<EmbedResult> => {
    if (shuttingDown) throw new EmbedderError("SHUTTING_DOWN", "the server is shutting down", { retryAfterMs: 1000 });
    active++;
    metrics.requestsInFlight.inc();
    try {
      return await work();
    } catch (error) {
      metrics.failuresTotal.inc({ reason: EmbedderError.from(error).reason });
      throw error;
    } finally {
      metrics.requestsInFlight.dec();
      if (--active === 0) {
        for (const waiter of drainWaiters) waiter();
        drainWaiters = [];
      }
    }
  };

  /**
   * Runs an admitted request; with `onItem` (streaming) each input is told as its batch finishes and `embeddings` stays empty.
   * A request routed to an upstream provider goes to the gateway, at the same seam as a local model; its items are told
   * once the whole answer is in (a fallback may restart it on another provider).
   */
  const embedAccepted = async (request: EmbedRequest, signal?: AbortSignal, onItem?: (item: EmbedStreamItem) => void): Promise<EmbedResult> => {
    const started = performance.now();
    const route = deps.providers?.route(request);
    if (deps.providers === undefined || route === undefined || route.provider === LOCAL_PROVIDER) {
      return embedLocal(route === undefined ? request : { ...request, model: route.model }, started, signal, onItem);
    }
    const result = await deps.providers.embed(request, route, {
      signal,
      hardwareProfile: profile.name,
      embedLocal: (model) => embedLocal({ ...request, model, provider: undefined }, performance.now(), signal),
    });
    if (onItem) {
      const characters = Math.max(1, request.texts.reduce((sum, text) => sum + text.length, 0));
      result.embeddings.forEach((embedding, index) => onItem({
        index, embedding, tokens: Math.max(1, Math.round((result.promptTokens * request.texts[index].length) / characters)), run: result.run,
      }));
    }
    return result;
  };

  /** {@link embedAccepted} on a local model. */
  const embedLocal = async (request: EmbedRequest, started: number, signal?: AbortSignal, onItem?: (item: EmbedStreamItem) => void): Promise<EmbedResult> => {
    const choice = await deps.registry.resolve(request.model);
    try {
      return await embedResolved(choice, started, request, signal, onItem);
    } finally {
      choice.release?.();
    }
  };

  /** {@link embedAccepted} once the model is resolved (and held loaded until the request ends). */
  const embedResolved = async (
    { model, preset }: ModelChoice,
    started: number,
    request: EmbedRequest,
    signal?: AbortSignal,
    onItem?: (item: EmbedStreamItem) => void,
  ): Promise<EmbedResult> => {
    const { manifest } = model;
    const plan = resolveDimensions(request.dimensions, manifest);
    // A request's profile changes only its own run: a CUDA tier on a host without CUDA runs on CPU, and the answer
    // says so (the tier asked for, the execution provider that ran); service health is not the caller's to change.
    const requestProfile = request.config.hardwareProfile && request.config.hardwareProfile !== "auto"
      ? resolveHardwareProfile(request.config.hardwareProfile, { cuda: false, cudaAvailable: deps.cudaAvailable })
      : profile;
    const variant = selectVariant(manifest, preset, request.config, requestProfile.precision);
    const runInfo = (executionProvider: string): RunInfo => ({
      modelId: manifest.id,
      name: manifest.name,
      dimensions: plan.size,
      qualityScore: manifest.qualityScore ?? 0,
      sizeMb: model.sizeMb,
      precision: variant.precision,
      executionProvider,
      provider: "local",
    });
    if ((request.tokenIds ?? request.texts).length === 0) {
      return {
        embeddings: [],
        run: runInfo(requestProfile.executionProviders[0]),
        timings: { totalMs: performance.now() - started, tokenizationMs: 0, queueMs: 0, inferenceMs: 0 },
        promptTokens: 0,
        truncatedInputs: [],
        hardwareProfile: requestProfile.name,
        dimensionsPolicy: plan.policy,
      };
    }

    batcher.checkRoom(request.texts.length, request.priority);
    const tokenizeStarted = performance.now();
    const modelFile = `${model.dir}/${variant.file}`;
    const executionProviders = requestProfile.executionProviders;
    const prepared = request.tokenIds === undefined ? prepareTexts(request.texts, manifest, request.promptName, request.instruction) : undefined;
    const cacheKeys = deps.cache && prepared?.map((text) => embeddingCacheKey({
      modelId: manifest.id, modelFile, modelFileSha256: manifest.files[variant.file] ?? "", precision: variant.precision,
      executionProviders, dimensions: plan.size, normalize: request.normalize, truncate: request.truncate, text,
    }));
    const hits: Array<CachedEmbedding | undefined> = cacheKeys?.map((cacheKey) => deps.cache?.get(cacheKey)) ?? [];
    const fresh = request.tokenIds !== undefined
      ? encodeTokenIds(request.tokenIds, model.tokenizer, request.truncate)
      : await tokenizeAll(model.tokenizer, (prepared ?? []).filter((_, index) => hits[index] === undefined), request.truncate);
    let freshSlot = 0;
    const encodings: Encoding[] = hits.length === 0 ? fresh : hits.map((hit) => hit === undefined
      ? fresh[freshSlot++]
      : { ids: new Int32Array(hit.tokens), truncated: hit.truncated, fullLength: hit.tokens });
    const tokenizationMs = performance.now() - tokenizeStarted;
    const truncatedInputs: number[] = [];
    /** Indices of the inputs that go to the batcher (a streaming call skips inputs that failed alone). */
    const submitted: number[] = [];
    let promptTokens = 0;
    encodings.forEach((encoding, index) => {
      if (request.truncate === "none" && encoding.fullLength > manifest.maxTokens) {
        // Tokenizers stop reading once a text is certain to be too long: fullLength is then a lower bound.
        const error = new EmbedderError("INPUT_TOO_LONG", `input ${index} has more than ${manifest.maxTokens} tokens, the model's limit (${encoding.fullLength} counted)`, {
          details: { index, tokens: encoding.fullLength, limit: manifest.maxTokens },
        });
        if (onItem === undefined) throw error;
        onItem({ index, error });
        return;
      }
      if (encoding.truncated) truncatedInputs.push(index);
      promptTokens += encoding.ids.length;
      if (hits[index] === undefined) submitted.push(index);
    });
    if (signal?.aborted) {
      metrics.cancelledTextsTotal.inc(encodings.length);
      throw new EmbedderError("CANCELLED", "the request was cancelled");
    }

    const key = `${modelFile}|${executionProviders.join(",")}`;
    const types: EmbeddingType[] = variant.binaryOutput && !request.embeddingTypes.includes("binary")
      ? [...request.embeddingTypes, "binary"]
      : request.embeddingTypes;
    const finish = (full: Float32Array) => {
      const vector = plan.policy === "matryoshka" ? full.slice(0, plan.size) : full;
      if (request.normalize || plan.policy === "matryoshka") normalizeInPlace(vector);
      return encodeEmbedding(vector, types);
    };
    /** Keeps a computed vector in the cache (a copy, before `finish` changes it in place). */
    const remember = (slot: number, vector: Float32Array, provider: string) => {
      const index = submitted[slot];
      const cacheKey = cacheKeys?.[index];
      if (cacheKey === undefined) return;
      deps.cache?.set(cacheKey, { vector, tokens: encodings[index].ids.length, truncated: encodings[index].truncated, executionProvider: provider });
    };
    const fromCache = (hit: CachedEmbedding) => finish(new Float32Array(hit.vector));
    if (onItem) {
      hits.forEach((hit, index) => {
        if (hit) onItem({ index, embedding: fromCache(hit), tokens: hit.tokens, run: runInfo(hit.executionProvider) });
      });
    }
    const tellItem = onItem && ((slot: number, vector: Float32Array, provider: string) => {
      const index = submitted[slot];
      remember(slot, vector, provider);
      onItem({ index, embedding: finish(vector), tokens: encodings[index].ids.length, run: runInfo(provider) });
    });

    const queued = performance.now();
    const { vectors, inferenceMs, executionProvider } = submitted.length === 0
      ? { vectors: [], inferenceMs: 0, executionProvider: hits.find((hit) => hit)?.executionProvider ?? executionProviders[0] }
      : await batcher.submit(
        submitted.map((index) => ({ ...encodings[index], key })),
        { batchSizeCap: request.config.batchSize, signal, onItem: tellItem, priority: request.priority, context: { modelFile, manifest, tokenizer: model.tokenizer, executionProviders } },
      );
    const queueMs = Math.max(0, performance.now() - queued - inferenceMs);
    if (!onItem) vectors.forEach((vector, slot) => remember(slot, vector, executionProvider));
    const computed = vectors.map(finish);
    let computedSlot = 0;
    const embeddings = onItem || hits.length === 0 ? computed : hits.map((hit) => (hit ? fromCache(hit) : computed[computedSlot++]));

    const totalMs = performance.now() - started;
    metrics.stageSeconds.observe({ stage: "tokenize" }, tokenizationMs / 1000);
    metrics.stageSeconds.observe({ stage: "queue" }, queueMs / 1000);
    metrics.stageSeconds.observe({ stage: "inference" }, inferenceMs / 1000);
    metrics.stageSeconds.observe({ stage: "total" }, totalMs / 1000);
    metrics.embeddingsTotal.inc({ model: manifest.id, precision: variant.precision }, submitted.length);
    recent.push({ at: Date.now(), latencyMs: totalMs });
    if (recent.length > LATENCY_WINDOW) recent.shift();
    return {
      embeddings,
      run: runInfo(executionProvider),
      timings: { totalMs, tokenizationMs, queueMs, inferenceMs },
      promptTokens,
      truncatedInputs,
      hardwareProfile: requestProfile.name,
      dimensionsPolicy: plan.policy,
    };
  };

  const health = (): HealthReport => {
    const workers = deps.pool.workers();
    const failures = deps.registry.failures();
    const modelsAvailable = deps.registry.defaultModel() !== undefined;
    const issues = failures.map((failure) => `model ${failure.id}: ${failure.reason}`);
    if (cudaConfiguredWithoutGpu) issues.push("CUDA configured but unavailable; running on CPU");
    const providerChecks = deps.providers?.healthChecks() ?? [];
    for (const check of providerChecks) if (!check.healthy) issues.push(`provider ${check.name}: circuit breaker ${check.breakerState}`);
    if (workers.ready < workers.total || (workers.lastLostAt > 0 && Date.now() - workers.lastLostAt < WORKER_RECOVERY_MS)) {
      issues.push(`an inference worker was replaced (${workers.replaced} since start)`);
    }
    const state = shuttingDown || !modelsAvailable || workers.ready === 0 ? "unhealthy" : issues.length > 0 ? "degraded" : "healthy";
    const windowStart = Date.now() - 60_000;
    const lastMinute = recent.filter((entry) => entry.at >= windowStart);
    return {
      state,
      checks: {
        modelsAvailable,
        gpuAccessible: deps.cudaAvailable,
        modelCacheHealthy: failures.length === 0,
        workers: { ready: workers.ready, total: workers.total, replaced: workers.replaced },
        providers: providerChecks,
        issues: shuttingDown ? ["shutting down", ...issues] : issues,
      },
      performance: {
        avgLatencyMs: recent.length ? recent.reduce((sum, entry) => sum + entry.latencyMs, 0) / recent.length : 0,
        requestsPerSecond: lastMinute.length / 60,
      },
      cache: cacheReport(deps.cache),
      version: deps.version,
      uptimeSeconds: (Date.now() - startedAt) / 1000,
      hardwareProfile: profile.name,
      executionProvider: profile.executionProviders[0],
      defaultModel: deps.registry.defaultModel()?.manifest.id ?? "",
    };
  };

  return {
    embed: (request, signal) => admit(() => embedAccepted(request, signal)),
    async embedStream(request, onItem, signal) {
      const { embeddings: _none, ...result } = await admit(() => embedAccepted(request, signal, onItem));
      return result;
    },
    health,
    async listModels(filter) {
      return deps.registry.describe().filter((model) =>
        (!filter.dimensions || model.dimensions === filter.dimensions || model.matryoshkaDimensions.includes(filter.dimensions)) &&
        (!filter.hardwareProfile || filter.hardwareProfile === "auto" || model.hardwareProfiles.length === 0 || model.hardwareProfiles.includes(filter.hardwareProfile)));
    },
    getModel: async (modelId) => deps.registry.describeOne(modelId),
    downloadModel: (modelId, revision) => deps.registry.download(modelId, revision),
    beginShutdown() {
      shuttingDown = true;
    },
    drained: async () => {
      await new Promise<void>((resolve) => {
        if (active === 0) resolve();
        else drainWaiters.push(resolve);
      });
      // A batch whose callers all cancelled (a dropped stream) may still be running in a worker; closing the pool under it aborts the process.
      await batcher.idle();
    },
  };
}
