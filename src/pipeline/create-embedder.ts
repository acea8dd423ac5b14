import { performance } from "node:perf_hooks";
import { EmbedderError } from "../domain/errors.js";
import type {
  EmbedRequest,
  EmbedResult,
  Embedder,
  EmbeddingType,
  HardwareProfileName,
  HealthReport,
} from "../domain/types.js";
import type { InferencePool } from "../inference/pool.js";
import type { SessionSettings } from "../inference/task.js";
import type { ModelRegistry } from "../models/registry.js";
import { selectVariant, type PrecisionPolicy } from "../models/select-variant.js";
import { encodeEmbedding, normalizeInPlace } from "../postprocess/encode-embedding.js";
import { resolveDimensions } from "../postprocess/resolve-dimensions.js";
import { planBatches } from "./plan-batches.js";
import { prepareTexts } from "./prepare-texts.js";

/** What the pipeline needs from the rest of the service. */
export interface EmbedderDeps {
  registry: ModelRegistry;
  pool: InferencePool;
  precision: PrecisionPolicy;
  session: SessionSettings;
  hardwareProfile: HardwareProfileName;
  /** Most inputs per inference batch when the request does not set `config.batch_size`. */
  maxBatchSize: number;
  /** Most padded tokens (rows x longest row) per inference batch. */
  tokenBudget: number;
  version: string;
  gpuAccessible: boolean;
}

/** The pipeline plus lifecycle hooks main uses. */
export interface EmbedderService extends Embedder {
  /** From now on new requests get SHUTTING_DOWN and health is unhealthy. */
  beginShutdown(): void;
}

const LATENCY_WINDOW = 256;

/**
 * Creates the one embedding pipeline every transport calls: model resolution,
 * prompts, tokenization with truncation, length-sorted batches on the worker
 * pool, then dimensions, normalisation and output encodings, in input order.
 */
export function createEmbedder(deps: EmbedderDeps): EmbedderService {
  const startedAt = Date.now();
  const recent: Array<{ at: number; latencyMs: number }> = [];
  let shuttingDown = false;

  const embed = async (request: EmbedRequest, signal?: AbortSignal): Promise<EmbedResult> => {
    if (shuttingDown) throw new EmbedderError("SHUTTING_DOWN", "the server is shutting down", { retryAfterMs: 1000 });
    const started = performance.now();
    const { model, preset } = await deps.registry.resolve(request.model);
    const { manifest } = model;
    const plan = resolveDimensions(request.dimensions, manifest);
    const variant = selectVariant(manifest, preset, request.config, deps.precision);

    const tokenizeStarted = performance.now();
    const texts = prepareTexts(request.texts, manifest, request.promptName, request.instruction);
    const encodings = model.tokenizer.encodeBatch(texts, { truncate: request.truncate });
    const tokenizationMs = performance.now() - tokenizeStarted;
    const truncatedInputs: number[] = [];
    let promptTokens = 0;
    encodings.forEach((encoding, index) => {
      if (encoding.truncated) truncatedInputs.push(index);
      if (request.truncate === "none" && encoding.fullLength > manifest.maxTokens) {
        throw new EmbedderError("INPUT_TOO_LONG", `input ${index} has ${encoding.fullLength} tokens; the model's limit is ${manifest.maxTokens}`, {
          details: { index, tokens: encoding.fullLength, limit: manifest.maxTokens },
        });
      }
      promptTokens += encoding.ids.length;
    });

    const batchSize = Math.min(request.config.batchSize ?? deps.maxBatchSize, deps.maxBatchSize);
    const batches = planBatches(encodings.map((encoding) => encoding.ids.length), batchSize, deps.tokenBudget);
    const vectors = new Array<Float32Array>(encodings.length);
    let inferenceMs = 0;
    let queueMs = 0;
    let executionProvider = "cpu";
    await Promise.all(batches.map(async (members) => {
      const submitted = performance.now();
      const padded = model.tokenizer.pad(members.map((index) => encodings[index]));
      const dims = [padded.batchSize, padded.sequenceLength];
      const inputs: Record<string, { data: BigInt64Array; dims: number[] }> = {
        input_ids: { data: padded.inputIds, dims },
        attention_mask: { data: padded.attentionMask, dims },
        token_type_ids: { data: new BigInt64Array(padded.inputIds.length), dims },
      };
      if (padded.positionIds) inputs.position_ids = { data: padded.positionIds, dims };
      const result = await deps.pool.run({
        modelFile: `${model.dir}/${variant.file}`,
        inputs,
        output: manifest.output,
        pooling: manifest.pooling,
        settings: deps.session,
      }, signal);
      inferenceMs += result.inferenceMs;
      queueMs = Math.max(queueMs, performance.now() - submitted - result.inferenceMs);
      executionProvider = result.executionProvider;
      members.forEach((index, row) => {
        vectors[index] = result.embeddings.slice(row * result.dimensions, (row + 1) * result.dimensions);
      });
    }));

    const types: EmbeddingType[] = variant.binaryOutput && !request.embeddingTypes.includes("binary")
      ? [...request.embeddingTypes, "binary"]
      : request.embeddingTypes;
    const embeddings = vectors.map((full) => {
      const vector = plan.policy === "matryoshka" ? full.slice(0, plan.size) : full;
      if (request.normalize || plan.policy === "matryoshka") normalizeInPlace(vector);
      return encodeEmbedding(vector, types);
    });

    const totalMs = performance.now() - started;
    recent.push({ at: Date.now(), latencyMs: totalMs });
    if (recent.length > LATENCY_WINDOW) recent.shift();
    return {
      embeddings,
      run: {
        modelId: manifest.id,
        name: manifest.name,
        dimensions: plan.size,
        qualityScore: manifest.qualityScore ?? 0,
        sizeMb: model.sizeMb,
        precision: variant.precision,
        executionProvider,
        provider: "local",
      },
      timings: { totalMs, tokenizationMs, queueMs, inferenceMs },
      promptTokens,
      truncatedInputs,
      hardwareProfile: deps.hardwareProfile,
      dimensionsPolicy: plan.policy,
    };
  };

  const health = (): HealthReport => {
    const workers = deps.pool.workers();
    const failures = deps.registry.failures();
    const modelsAvailable = deps.registry.defaultModel() !== undefined;
    const issues = failures.map((failure) => `model ${failure.id}: ${failure.reason}`);
    if (!deps.gpuAccessible && deps.session.executionProviders.includes("cuda")) issues.push("CUDA requested but unavailable; running on CPU");
    const state = shuttingDown || !modelsAvailable || workers.ready === 0 ? "unhealthy" : issues.length > 0 ? "degraded" : "healthy";
    const windowStart = Date.now() - 60_000;
    const lastMinute = recent.filter((entry) => entry.at >= windowStart);
    return {
      state,
      checks: {
        modelsAvailable,
        gpuAccessible: deps.gpuAccessible,
        modelCacheHealthy: failures.length === 0,
        workers: { ...workers, replaced: 0 },
        providers: [],
        issues: shuttingDown ? ["shutting down", ...issues] : issues,
      },
      performance: {
        avgLatencyMs: recent.length ? recent.reduce((sum, entry) => sum + entry.latencyMs, 0) / recent.length : 0,
        requestsPerSecond: lastMinute.length / 60,
      },
      cache: { enabled: false, entries: 0, hits: 0, misses: 0 },
      version: deps.version,
      uptimeSeconds: (Date.now() - startedAt) / 1000,
      hardwareProfile: deps.hardwareProfile,
      executionProvider: deps.gpuAccessible ? "cuda" : "cpu",
      defaultModel: deps.registry.defaultModel()?.manifest.id ?? "",
    };
  };

  return {
    embed,
    health,
    async listModels(filter) {
      return deps.registry.describe().filter((model) =>
        (!filter.dimensions || model.dimensions === filter.dimensions || model.matryoshkaDimensions.includes(filter.dimensions)) &&
        (!filter.hardwareProfile || filter.hardwareProfile === "auto" || model.hardwareProfiles.length === 0 || model.hardwareProfiles.includes(filter.hardwareProfile)));
    },
    beginShutdown() {
      shuttingDown = true;
    },
  };
}
