import { performance } from "node:perf_hooks";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import type { CachedEmbedding, EmbeddingCache } from "../cache/embedding-cache.js";
import { usesDefaultEmbeddingTypes } from "../domain/embed-request.js";
import { EmbedderError } from "../domain/errors.js";
import type { DimensionsPolicy, EmbedPlan, EmbedRequest, EmbedResult, EmbedStreamItem, EmbeddingType, HardwareProfileName, RunInfo } from "../domain/types.js";
import { answeredProfileName, resolveHardwareProfile, type HardwareProfile } from "../inference/hardware-profile.js";
import type { InferencePool } from "../inference/pool.js";
import type { ModelChoice, ModelRegistry } from "../models/registry.js";
import { selectVariant, type VariantChoice } from "../models/select-variant.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { finishEmbedding } from "../postprocess/encode-embedding.js";
import { resolveDimensions, type DimensionsPlan } from "../postprocess/resolve-dimensions.js";
import type { Encoding, Tokenizer } from "../tokenize/index.js";
import { lookUpInputs, mergeEncodings, mergeResults } from "./cached-inputs.js";
import { createInferenceBatcher } from "./create-inference-batcher.js";
import { prepareTexts } from "./prepare-texts.js";

/** What the local engine needs from the rest of the service. */
export interface LocalEngineDeps {
  registry: ModelRegistry;
  pool: InferencePool;
  /** The server's profile: worker count, threads, batch limits, default precision policy. */
  profile: HardwareProfile;
  /** Whether the CUDA execution provider opened a session on this host (probed at start). */
  cudaAvailable: boolean;
  /** Most texts waiting for a batch; beyond it requests get OVERLOADED at once. */
  maxQueue: number;
  logger: Logger;
  metrics: Metrics;
  /** Embedding cache (hits skip tokenization and inference); absent = off. */
  cache?: EmbeddingCache;
  /** The server's dimensions policy (`SUTRA_DIMENSIONS_POLICY`), for requests that name none. */
  dimensionsPolicy: DimensionsPolicy;
}

/**
 * The server's own models, behind the front door: resolve model and variant,
 * tokenize, submit to the batcher, finish each vector
 * (dimensions, normalisation, output types). Requests reach it validated and
 * admitted; it checks only what needs the model (UNKNOWN_MODEL, dimensions the
 * model cannot give, prompts, INPUT_TOO_LONG, token ids, queue room).
 */
export interface LocalEngine {
  /** Embeds a request; with `onItem` (streaming) each input is told as its batch finishes and `embeddings` stays empty. */
  embed(request: EmbedRequest, signal?: AbortSignal, onItem?: (item: EmbedStreamItem) => void): Promise<EmbedResult>;
  /** Resolves the model, variant and dimensions a request would run with, running nothing. */
  check(request: EmbedRequest): Promise<EmbedPlan>;
  /** Resolves once no batch waits or runs (a cancelled caller's batch may still run in a worker). */
  idle(): Promise<void>;
  /** Throws OVERLOADED when an online request of `count` texts would find no queue room now, `pending` more texts counted as queued. */
  checkRoom(count: number, pending: number): void;
}

/** Texts tokenized between yields to the event loop, so a 2,048-text request does not stall other clients. */
const TOKENIZE_SLICE = 64;

/** A request resolved against a model: what runs it and how its vectors are sized. */
interface ResolvedRun {
  choice: ModelChoice;
  plan: DimensionsPlan;
  variant: VariantChoice;
  profile: HardwareProfile;
  /** The profile the answer names: the one asked for, or under `auto` the tier detected on this host. */
  hardwareProfile: HardwareProfileName;
  runInfo(executionProvider: string): RunInfo;
}

/**
 * The encodings a run answers: what the client asked for, and under the binary policy packed bits
 * (`binary`) in place of the default floats; floats the client named in `embedding_types` stay.
 */
function outputTypes(request: EmbedRequest, variant: VariantChoice): EmbeddingType[] {
  if (!variant.binaryOutput) return request.embeddingTypes;
  const asked = usesDefaultEmbeddingTypes(request) ? [] : request.embeddingTypes;
  return asked.includes("binary") ? asked : [...asked, "binary"];
}

async function tokenizeAll(tokenizer: Tokenizer, texts: string[], truncate: EmbedRequest["truncate"]): Promise<Encoding[]> {
  if (texts.length <= TOKENIZE_SLICE) return tokenizer.encodeBatch(texts, { truncate });
  const encodings: Encoding[] = [];
  for (let start = 0; start < texts.length; start += TOKENIZE_SLICE) {
    if (start > 0) await yieldToEventLoop();
    encodings.push(...tokenizer.encodeBatch(texts.slice(start, start + TOKENIZE_SLICE), { truncate }));
  }
  return encodings;
}

/** Creates the local engine over the registry, the worker pool and the shared batcher. */
export function createLocalEngine(deps: LocalEngineDeps): LocalEngine {
  const { metrics } = deps;
  const batcher = createInferenceBatcher(deps);

  /** The model (held loaded until `choice.release`), its dimensions plan, variant and the profile the request runs under. */
  const resolve = async (request: EmbedRequest): Promise<ResolvedRun> => {
    const choice = await deps.registry.resolve(request.model);
    try {
      const { manifest } = choice.model;
      const plan = resolveDimensions(request.dimensions, request.dimensionsPolicy ?? deps.dimensionsPolicy, manifest);
      // A request's profile changes only its own run: a CUDA tier on a host without CUDA runs on CPU, and the answer
      // says so (the tier asked for, the execution provider that ran); service health is not the caller's to change.
      const asked = request.config.hardwareProfile;
      const profile = asked && asked !== "auto" ? resolveHardwareProfile(asked, { cuda: false, cudaAvailable: deps.cudaAvailable }) : deps.profile;
      const variant = selectVariant(manifest, choice.preset, request.config, profile.precision);
      const base = {
        modelId: manifest.id, name: manifest.name, dimensions: plan.size, qualityScore: manifest.qualityScore ?? 0,
        sizeMb: choice.model.sizeMb, precision: variant.precision, provider: "local",
      };
      return { choice, plan, variant, profile, hardwareProfile: answeredProfileName(profile), runInfo: (executionProvider) => ({ ...base, executionProvider }) };
    } catch (error) {
      choice.release?.();
      throw error;
    }
  };

  const run = async (resolved: ResolvedRun, request: EmbedRequest, signal?: AbortSignal, onItem?: (item: EmbedStreamItem) => void): Promise<EmbedResult> => {
    const started = performance.now();
    const { choice: { model }, plan, variant, profile, hardwareProfile, runInfo } = resolved;
    const { manifest, tokenizer } = model;
    batcher.checkRoom(request.texts.length, request.priority);
    const modelFile = `${model.dir}/${variant.file}`;
    const executionProviders = profile.executionProviders;
    const prepared = prepareTexts(request.texts, manifest, request.promptName, request.instruction);
    const cached = lookUpInputs(deps.cache, {
      modelId: manifest.id, modelFile, modelFileSha256: manifest.files[variant.file] ?? "", precision: variant.precision,
      executionProviders, dimensions: plan.size, normalize: request.normalize, truncate: request.truncate,
    }, prepared);
    const { hits } = cached;
    const fresh = await tokenizeAll(tokenizer, hits.length === 0 ? prepared : prepared.filter((_, index) => hits[index] === undefined), request.truncate);
    const encodings = mergeEncodings(hits, fresh);
    const tokenizationMs = performance.now() - started;
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

    const types = outputTypes(request, variant);
    const finish = (vector: Float32Array) => finishEmbedding(vector, plan, request.normalize, types);
    const fromCache = (hit: CachedEmbedding) => finish(new Float32Array(hit.vector));
    /** Keeps a computed vector in the cache: a copy, taken before `finish` may change it in place. */
    const remember = (slot: number, vector: Float32Array, executionProvider: string) => {
      const index = submitted[slot];
      const cacheKey = cached.keys?.[index];
      if (cacheKey === undefined) return;
      deps.cache?.set(cacheKey, { vector: vector.slice(), tokens: encodings[index].ids.length, truncated: encodings[index].truncated, executionProvider });
    };
    if (onItem) {
      hits.forEach((hit, index) => {
        if (hit) onItem({ index, embedding: fromCache(hit), tokens: hit.tokens, run: runInfo(hit.executionProvider) });
      });
    }
    const tellItem = onItem && ((slot: number, vector: Float32Array, executionProvider: string) => {
      const index = submitted[slot];
      remember(slot, vector, executionProvider);
      onItem({ index, embedding: finish(vector), tokens: encodings[index].ids.length, run: runInfo(executionProvider) });
    });

    const queued = performance.now();
    const key = `${modelFile}|${executionProviders.join(",")}`;
    const submission = submitted.length === 0
      ? Promise.resolve({ vectors: [], inferenceMs: 0, executionProvider: hits.find((hit) => hit)?.executionProvider ?? executionProviders[0] })
      : batcher.submit(
        submitted.map((index) => ({ ...encodings[index], key })),
        { batchSizeCap: request.config.batchSize, signal, onItem: tellItem, priority: request.priority, context: { modelFile, manifest, tokenizer, executionProviders } },
      );
    // Its texts are queued now (or refused): the place an early admission held is theirs.
    request.admission?.release();
    const { vectors, inferenceMs, executionProvider } = await submission;
    const queueMs = Math.max(0, performance.now() - queued - inferenceMs);
    if (!onItem) vectors.forEach((vector, slot) => remember(slot, vector, executionProvider));
    const computed = vectors.map(finish);
    const embeddings = onItem ? computed : mergeResults(hits, computed, fromCache);

    const totalMs = performance.now() - started;
    metrics.countEmbeddings(manifest.id, variant.precision, submitted.length);
    const timings = { totalMs, tokenizationMs, queueMs, inferenceMs };
    metrics.observeStages(timings);
    return {
      embeddings,
      run: runInfo(executionProvider),
      timings,
      promptTokens,
      truncatedInputs,
      hardwareProfile,
      dimensionsPolicy: plan.policy,
    };
  };

  return {
    async embed(request, signal, onItem) {
      const resolved = await resolve(request);
      try {
        return await run(resolved, request, signal, onItem);
      } finally {
        resolved.choice.release?.();
      }
    },
    async check(request) {
      const resolved = await resolve(request);
      resolved.choice.release?.();
      return { run: resolved.runInfo(resolved.profile.executionProviders[0]), hardwareProfile: resolved.hardwareProfile, dimensionsPolicy: resolved.plan.policy };
    },
    idle: () => batcher.idle(),
    checkRoom: (count, pending) => batcher.checkRoom(count, "online", pending),
  };
}
