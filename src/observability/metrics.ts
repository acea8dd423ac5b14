import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { HealthReport, ModelDescription, StageTimings } from "../domain/types.js";

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
  requestsInFlight: Gauge;
  /** Sets where `sutra_queue_depth` reads the batcher's depth at scrape time. */
  observeQueueDepth(read: () => number): void;
  /** Sets where `sutra_requests_in_flight` reads the front door's count at scrape time. */
  observeRequestsInFlight(read: () => number): void;
  /** Records one request's stage timings in `sutra_stage_duration_seconds` (label sets bound once, not looked up per call). */
  observeStages(timings: StageTimings): void;
  /**
   * Counts one answered request in `sutra_requests_total` and, given its
   * duration, times it in `sutra_request_duration_seconds`; each label set is
   * bound once and reused (the values are bounded: protocols, routes, codes).
   */
  recordRequest(protocol: string, route: string, code: string, seconds?: number): void;
  /** Adds to `sutra_embeddings_total` and `sutra_prompt_tokens_total` through label sets bound once. */
  countEmbeddings(model: string, precision: string, embeddings: number): void;
  countPromptTokens(model: string, tokens: number): void;
  embeddingsTotal: Counter<"model" | "precision">;
  failuresTotal: Counter<"reason">;
  cancelledTextsTotal: Counter;
  workerReplacementsTotal: Counter;
  inferenceBatchesTotal: Counter;
  /** Document-job chunks handed to inference (a chunk lost to a restart and redone counts twice). */
  jobChunksEmbeddedTotal: Counter;
  /** Document jobs that reached a final status (completed, failed, cancelled). */
  jobsFinishedTotal: Counter<"status">;
  /** Requests by protocol (`http`, `grpc`, `connect`, `grpc-web`), route (template or procedure) and code (HTTP status or Connect code). */
  requestsTotal: Counter<"protocol" | "route" | "code">;
  requestSeconds: Histogram<"protocol" | "route">;
  promptTokensTotal: Counter<"model">;
  rateLimitedTotal: Counter<"limit">;
  /** Failed upstream calls by provider, model and reason (rate_limited, server_error, client_error, timeout, network, bad_response, breaker_open, no_slot). */
  providerFailuresTotal: Counter<"provider" | "model" | "reason">;
  /** Requests moved from one provider to the next in the fallback chain. */
  fallbacksTotal: Counter<"from_provider" | "to_provider">;
  /** Duration of upstream calls by provider and outcome (ok, error). */
  upstreamSeconds: Histogram<"provider" | "outcome">;
  /** Connections closed as soon as accepted, by reason (`per_address`: the client address held `SUTRA_MAX_CONNECTIONS_PER_ADDRESS`). */
  connectionsRefusedTotal: Counter<"reason">;
}

/**
 * A memo of metric children by label values: prom-client hashes a label object
 * on every `inc`/`observe`; a child bound once skips that on the hot path.
 */
function boundLabels<Child>(bind: (...values: string[]) => Child): (...values: string[]) => Child {
  const children = new Map<string, Child>();
  return (...values) => {
    const key = values.join("\u0000");
    let child = children.get(key);
    if (child === undefined) {
      child = bind(...values);
      children.set(key, child);
    }
    return child;
  };
}

/** Creates the metrics of one service instance, with Node's default process metrics. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "sutra_" });
  const registers = [registry];
  let readQueueDepth = () => 0;
  let readRequestsInFlight = () => 0;
  const stageSeconds = new Histogram({
    name: "sutra_stage_duration_seconds",
    help: "Time per request spent in each pipeline stage (tokenize, queue, inference, total)",
    labelNames: ["stage"],
    buckets: DURATION_BUCKETS,
    registers,
  });
  const stages = {
    tokenize: stageSeconds.labels({ stage: "tokenize" }),
    queue: stageSeconds.labels({ stage: "queue" }),
    inference: stageSeconds.labels({ stage: "inference" }),
    total: stageSeconds.labels({ stage: "total" }),
  };
  const requestsTotal = new Counter({
    name: "sutra_requests_total",
    help: "Requests answered, by protocol, route and code (HTTP status, or Connect code for RPCs)",
    labelNames: ["protocol", "route", "code"] as const,
    registers,
  });
  const requestSeconds = new Histogram({
    name: "sutra_request_duration_seconds",
    help: "Time from a request's arrival to its answer, by protocol and route",
    labelNames: ["protocol", "route"] as const,
    buckets: DURATION_BUCKETS,
    registers,
  });
  const embeddingsTotal = new Counter({
    name: "sutra_embeddings_total",
    help: "Embeddings produced",
    labelNames: ["model", "precision"] as const,
    registers,
  });
  const promptTokensTotal = new Counter({ name: "sutra_prompt_tokens_total", help: "Tokens embedded, by model", labelNames: ["model"] as const, registers });
  const requestCounts = boundLabels((protocol, route, code) => requestsTotal.labels({ protocol, route, code }));
  const requestDurations = boundLabels((protocol, route) => requestSeconds.labels({ protocol, route }));
  const embeddingCounts = boundLabels((model, precision) => embeddingsTotal.labels({ model, precision }));
  const promptTokenCounts = boundLabels((model) => promptTokensTotal.labels({ model }));
  return {
    registry,
    stageSeconds,
    recordRequest(protocol, route, code, seconds) {
      requestCounts(protocol, route, code).inc();
      if (seconds !== undefined) requestDurations(protocol, route).observe(seconds);
    },
    countEmbeddings(model, precision, embeddings) {
      embeddingCounts(model, precision).inc(embeddings);
    },
    countPromptTokens(model, tokens) {
      promptTokenCounts(model).inc(tokens);
    },
    observeStages(timings) {
      stages.tokenize.observe(timings.tokenizationMs / 1000);
      stages.queue.observe(timings.queueMs / 1000);
      stages.inference.observe(timings.inferenceMs / 1000);
      stages.total.observe(timings.totalMs / 1000);
    },
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
    queueDepth: new Gauge({
      name: "sutra_queue_depth",
      help: "Texts waiting for an inference batch",
      registers,
      collect() {
        this.set(readQueueDepth());
      },
    }),
    requestsInFlight: new Gauge({
      name: "sutra_requests_in_flight",
      help: "Embedding requests accepted and not yet answered",
      registers,
      collect() {
        this.set(readRequestsInFlight());
      },
    }),
    observeQueueDepth(read) {
      readQueueDepth = read;
    },
    observeRequestsInFlight(read) {
      readRequestsInFlight = read;
    },
    embeddingsTotal,
    failuresTotal: new Counter({ name: "sutra_failures_total", help: "Failed requests by reason", labelNames: ["reason"], registers }),
    cancelledTextsTotal: new Counter({
      name: "sutra_cancelled_texts_total",
      help: "Queued texts dropped before inference because their client went away",
      registers,
    }),
    workerReplacementsTotal: new Counter({ name: "sutra_worker_replacements_total", help: "Inference workers that died and were replaced", registers }),
    inferenceBatchesTotal: new Counter({ name: "sutra_inference_batches_total", help: "Inference batches run", registers }),
    jobChunksEmbeddedTotal: new Counter({ name: "sutra_job_chunks_embedded_total", help: "Document-job chunks handed to inference", registers }),
    jobsFinishedTotal: new Counter({ name: "sutra_jobs_finished_total", help: "Document jobs that reached a final status", labelNames: ["status"], registers }),
    requestsTotal,
    requestSeconds,
    promptTokensTotal,
    rateLimitedTotal: new Counter({
      name: "sutra_rate_limited_total",
      help: "Requests refused by a per-principal rate limit, by limit (requests, tokens)",
      labelNames: ["limit"],
      registers,
    }),
    providerFailuresTotal: new Counter({
      name: "sutra_provider_failures_total",
      help: "Failed upstream provider calls, by provider, model and reason",
      labelNames: ["provider", "model", "reason"],
      registers,
    }),
    fallbacksTotal: new Counter({
      name: "sutra_fallbacks_total",
      help: "Requests that fell back from one provider to the next in the fallback chain",
      labelNames: ["from_provider", "to_provider"],
      registers,
    }),
    upstreamSeconds: new Histogram({
      name: "sutra_upstream_request_duration_seconds",
      help: "Duration of upstream provider calls, by provider and outcome (ok, error)",
      labelNames: ["provider", "outcome"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    connectionsRefusedTotal: new Counter({
      name: "sutra_connections_refused_total",
      help: "Connections closed as soon as accepted, by reason (per_address)",
      labelNames: ["reason"],
      registers,
    }),
  };
}

/** What the scrape-time gauges read from the running service. */
export interface ServiceGaugeSource {
  health(): HealthReport;
  listModels(filter: Record<string, never>): Promise<ModelDescription[]>;
}

/**
 * Registers gauges computed at scrape time from the service itself, so they
 * cannot drift from what health and ListModels report: models loaded, and the
 * embedding cache's entries, hits and misses (`sutra_cache_*`, zero while the
 * cache is off).
 */
export function registerServiceGauges(metrics: Metrics, source: ServiceGaugeSource): void {
  const registers = [metrics.registry];
  new Gauge({
    name: "sutra_models_loaded",
    help: "Models loaded and ready to serve",
    registers,
    async collect() {
      this.set((await source.listModels({})).filter((model) => model.status === "loaded").length);
    },
  });
  const cacheGauge = (name: string, help: string, read: (cache: HealthReport["cache"]) => number): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(source.health().cache));
      },
    });
  };
  cacheGauge("sutra_cache_entries", "Embeddings held by the cache", (cache) => cache.entries);
  cacheGauge("sutra_cache_hits", "Cache hits since start", (cache) => cache.hits);
  cacheGauge("sutra_cache_misses", "Cache misses since start", (cache) => cache.misses);
}

/** What the stream gauges read: the stream registry's counters. */
export interface StreamGaugeSource {
  stats(): { open: number; streams: Array<{ pendingChunks: number; full: boolean }> };
}

/**
 * Registers gauges of the open streams (StreamEmbeddings and WebSocket), read
 * from the stream registry at scrape time: streams open, chunks they hold,
 * and streams at their bound (their clients are not being read).
 */
export function registerStreamGauges(metrics: Metrics, source: StreamGaugeSource): void {
  const registers = [metrics.registry];
  const streamGauge = (name: string, help: string, read: (stats: ReturnType<StreamGaugeSource["stats"]>) => number): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(source.stats()));
      },
    });
  };
  streamGauge("sutra_streams_open", "Open embedding streams (StreamEmbeddings and WebSocket)", (stats) => stats.open);
  streamGauge("sutra_stream_pending_chunks", "Chunks the open streams hold: waiting, in inference, or answered and not yet sent", (stats) =>
    stats.streams.reduce((sum, stream) => sum + stream.pendingChunks, 0));
  streamGauge("sutra_streams_full", "Open streams at their bound, whose clients are not read until they take answers", (stats) =>
    stats.streams.filter((stream) => stream.full).length);
}

/** What the connection gauges read from the server at scrape time. */
export interface ConnectionGaugeSource {
  /** HTTP/2 sessions (connections) open now. */
  http2Sessions(): number;
  /** grpc.health.v1 Watch streams open now. */
  watchStreams(): number;
}

/**
 * Registers gauges of what clients hold open on the server, read at scrape
 * time: HTTP/2 sessions and health Watch streams. Both return to 0 once
 * clients leave; a value that stays up shows something is still held.
 */
export function registerConnectionGauges(metrics: Metrics, source: ConnectionGaugeSource): void {
  const registers = [metrics.registry];
  new Gauge({
    name: "sutra_http2_sessions_open",
    help: "Open HTTP/2 sessions (connections)",
    registers,
    collect() {
      this.set(source.http2Sessions());
    },
  });
  new Gauge({
    name: "sutra_watch_streams_open",
    help: "Open grpc.health.v1 Watch streams",
    registers,
    collect() {
      this.set(source.watchStreams());
    },
  });
}
