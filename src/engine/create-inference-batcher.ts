import { createBatcher, type Batcher } from "../batching/create-batcher.js";
import { EmbedderError } from "../domain/errors.js";
import type { HardwareProfile } from "../inference/hardware-profile.js";
import type { InferencePool } from "../inference/pool.js";
import type { InferenceResult, InferenceTask } from "../inference/task.js";
import type { ModelManifest } from "../models/manifest.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { Encoding, Tokenizer } from "../tokenize/index.js";

/** What every item of one batch shares: the weight file, its manifest and tokenizer, the execution providers. */
export interface BatchContext {
  modelFile: string;
  manifest: ModelManifest;
  tokenizer: Tokenizer;
  executionProviders: string[];
}

/** A tokenized text waiting for a batch; `key` keeps batches to one model file and provider list. */
export type QueuedText = Encoding & { key: string };

/** What the inference batcher needs. */
export interface InferenceBatcherDeps {
  pool: InferencePool;
  /** Worker count, intra-op threads, batch size and token budget. */
  profile: HardwareProfile;
  /** Most texts waiting per priority; beyond it requests get OVERLOADED at once. */
  maxQueue: number;
  logger: Logger;
  metrics: Metrics;
}

/**
 * Padded batch lengths are multiples of this many tokens, and a lone text runs with a second row
 * (its first token alone, discarded): ONNX Runtime's vectorised sums (softmax, pooling) add a row's values in an
 * order that depends on the padded length's remainder modulo the vector width, and a batch of
 * one row takes other reduction kernels than a batch of several. Either moves a vector in its
 * last bits, which int8 activation quantization can turn into 1e-4; aligned this way, a text
 * gets the same bits in any batch, at every precision.
 */
export const SEQUENCE_ALIGNMENT = 8;

/**
 * The batcher wired to the worker pool: each batch is padded (SEQUENCE_ALIGNMENT), turned into an
 * inference task (ids, mask, token types, positions) and run on a worker, with
 * at most one batch per worker in flight. A batch whose worker died is retried
 * once on the replacement; a second failure is the batch's WORKER_FAILED.
 * Each vector comes back as a view on the batch's one transferred buffer.
 */
export function createInferenceBatcher(deps: InferenceBatcherDeps): Batcher<QueuedText, BatchContext> {
  const { profile, metrics } = deps;

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
    sequenceAlignment: SEQUENCE_ALIGNMENT,
    maxQueue: deps.maxQueue,
    onCancelled: (items) => metrics.cancelledTextsTotal.inc(items),
    async run({ items, context }) {
      const padded = context.tokenizer.pad(items.length === 1 ? [items[0], { ...items[0], ids: items[0].ids.subarray(0, 1) }] : items, SEQUENCE_ALIGNMENT);
      const dims = [padded.batchSize, padded.sequenceLength];
      let contentTokens = 0;
      for (const item of items) contentTokens += item.ids.length;
      metrics.observeBatch(items.length, contentTokens, padded.batchSize * padded.sequenceLength);
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
      const vectors = items.map((_, row) => result.embeddings.subarray(row * result.dimensions, (row + 1) * result.dimensions));
      return { vectors, inferenceMs: result.inferenceMs, executionProvider: result.executionProvider };
    },
  });
  metrics.observeQueueDepth(() => batcher.queueDepth());
  return batcher;
}
