import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Buckets for stage durations, in seconds (0.5 ms .. 10 s). */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Every Prometheus metric of the service, under one `sutra_` prefix, in one
 * registry per service instance (tests build several services in one process).
 * Label values are bounded: stages, reasons and precisions are fixed sets.
 */
export interface Metrics {
  registry: Registry;
  stageSeconds: Histogram<"stage">;
  batchSize: Histogram;
  batchTokens: Histogram;
  queueDepth: Gauge;
  embeddingsTotal: Counter<"model" | "precision">;
  failuresTotal: Counter<"reason">;
  cancelledTextsTotal: Counter;
  workerReplacementsTotal: Counter;
  inferenceBatchesTotal: Counter;
}

/** Creates the metrics of one service instance, with Node's default process metrics. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "sutra_" });
  const registers = [registry];
  return {
    registry,
    stageSeconds: new Histogram({
      name: "sutra_stage_duration_seconds",
      help: "Time per request spent in each pipeline stage (tokenize, queue, inference, total)",
      labelNames: ["stage"],
      buckets: DURATION_BUCKETS,
      registers,
    }),
    batchSize: new Histogram({
      name: "sutra_batch_size",
      help: "Texts per inference batch",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    }),
    batchTokens: new Histogram({
      name: "sutra_batch_tokens",
      help: "Padded tokens per inference batch",
      buckets: [16, 64, 256, 1024, 4096, 16384, 65536],
      registers,
    }),
    queueDepth: new Gauge({ name: "sutra_queue_depth", help: "Texts waiting for an inference batch", registers }),
    embeddingsTotal: new Counter({
      name: "sutra_embeddings_total",
      help: "Embeddings produced",
      labelNames: ["model", "precision"],
      registers,
    }),
    failuresTotal: new Counter({ name: "sutra_failures_total", help: "Failed requests by reason", labelNames: ["reason"], registers }),
    cancelledTextsTotal: new Counter({
      name: "sutra_cancelled_texts_total",
      help: "Queued texts dropped before inference because their client went away",
      registers,
    }),
    workerReplacementsTotal: new Counter({ name: "sutra_worker_replacements_total", help: "Inference workers that died and were replaced", registers }),
    inferenceBatchesTotal: new Counter({ name: "sutra_inference_batches_total", help: "Inference batches run", registers }),
  };
}
