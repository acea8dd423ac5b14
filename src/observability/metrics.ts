import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { StageTimings } from "../domain/types.js";

/** The scrape-time gauges (register-service-gauges.ts), re-exported so that their callers find every metric here. */
export { registerConnectionGauges, registerServiceGauges, registerStreamGauges } from "./register-service-gauges.js";
export type { ConnectionGaugeSource, ServiceGaugeSource, StreamGaugeSource } from "./register-service-gauges.js";

/** Buckets for stage durations, in seconds (0.5 ms .. 10 s). */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** How an embedding request ended, the `status` of `embedding_requests_total`. */
type EmbeddingRequestStatus = "success" | "error";

/**
 * Every Prometheus metric of the service, under one `sutra_` prefix, in one
 * registry per service instance (tests build several services in one process),
 * plus the four names of the seed Embeddings API guide (`embedding_*`,
 * docs/OBSERVABILITY.md), each counted at the same place as its `sutra_`
 * counterpart. Label values are bounded: stages, reasons and precisions are fixed sets.
 */
export interface Metrics {
  registry: Registry;
  stageSeconds: Histogram<"stage">;
  batchSize: Histogram;
  batchTokens: Histogram;
  /** Tokens of inference batches by kind: `content` (the texts' own) and `padding` (added to reach the batch's longest). */
  batchTokensTotal: Counter<"kind">;
  /** Share of each batch's padded tokens that is padding. */
  batchPaddingRatio: Histogram;
  /** Records one inference batch: its size, padded tokens, and how much of them is padding. */
  observeBatch(texts: number, contentTokens: number, paddedTokens: number): void;
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
  /**
   * Counts one failed upstream call in `sutra_provider_failures_total` and the
   * guide's `embedding_provider_failures_total`, by provider, configured model
   * and reason (rate_limited, server_error, client_error, timeout, network,
   * bad_response, breaker_open, no_slot).
   */
  countProviderFailure(provider: string, model: string, reason: string): void;
  /** Counts one move along the fallback chain in `sutra_fallbacks_total` and the guide's `embedding_fallbacks_total`. */
  countFallback(fromProvider: string, toProvider: string): void;
  /**
   * Times one online embedding request from now until `pending` settles, in
   * the guide's `embedding_request_duration_seconds`, and counts it in
   * `embedding_requests_total{status}` (`success` or `error`); resolves or
   * rejects as `pending` does.
   */
  timeEmbeddingRequest<T>(pending: Promise<T>): Promise<T>;
  /** Embedding requests accepted and not yet answered now: what `sutra_requests_in_flight` reads. */
  activeRequests(): number;
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
  const providerFailureLabels = ["provider", "model", "reason"] as const;
  const providerFailures = [
    new Counter({ name: "sutra_provider_failures_total", help: "Failed upstream provider calls, by provider, model and reason", labelNames: providerFailureLabels, registers }),
    new Counter({ name: "embedding_provider_failures_total", help: "Failed upstream provider calls (the seed guide's name)", labelNames: providerFailureLabels, registers }),
  ];
  const fallbackLabels = ["from_provider", "to_provider"] as const;
  const fallbacks = [
    new Counter({ name: "sutra_fallbacks_total", help: "Requests that fell back from one provider to the next in the fallback chain", labelNames: fallbackLabels, registers }),
    new Counter({ name: "embedding_fallbacks_total", help: "Provider fallbacks (the seed guide's name)", labelNames: fallbackLabels, registers }),
  ];
  const embeddingRequests = new Counter({
    name: "embedding_requests_total",
    help: "Total embedding requests",
    labelNames: ["status"] as const,
    registers,
  });
  const embeddingRequestSeconds = new Histogram({ name: "embedding_request_duration_seconds", help: "Request duration", buckets: DURATION_BUCKETS, registers });
  const requestsEnded = { success: embeddingRequests.labels({ status: "success" }), error: embeddingRequests.labels({ status: "error" }) };
  const endEmbeddingRequest = (status: EmbeddingRequestStatus, started: number): void => {
    requestsEnded[status].inc();
    embeddingRequestSeconds.observe((performance.now() - started) / 1000);
  };
  const batchSize = new Histogram({
    name: "sutra_batch_size",
    help: "Texts per inference batch",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers,
  });
  const batchTokens = new Histogram({
    name: "sutra_batch_tokens",
    help: "Padded tokens per inference batch",
    buckets: [16, 64, 256, 1024, 4096, 16384, 65536],
    registers,
  });
  const batchTokensTotal = new Counter({
    name: "sutra_batch_tokens_total",
    help: "Tokens of inference batches: the texts' own (content) and those added to reach each batch's longest text (padding)",
    labelNames: ["kind"] as const,
    registers,
  });
  const batchPaddingRatio = new Histogram({
    name: "sutra_batch_padding_ratio",
    help: "Share of an inference batch's padded tokens that is padding",
    buckets: [0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75],
    registers,
  });
  const batchTokenKinds = { content: batchTokensTotal.labels({ kind: "content" }), padding: batchTokensTotal.labels({ kind: "padding" }) };
  return {
    registry,
    stageSeconds,
    batchSize,
    batchTokens,
    batchTokensTotal,
    batchPaddingRatio,
    observeBatch(texts, contentTokens, paddedTokens) {
      batchSize.observe(texts);
      batchTokens.observe(paddedTokens);
      batchTokenKinds.content.inc(contentTokens);
      batchTokenKinds.padding.inc(paddedTokens - contentTokens);
      batchPaddingRatio.observe(paddedTokens > 0 ? (paddedTokens - contentTokens) / paddedTokens : 0);
    },
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
    countProviderFailure(provider, model, reason) {
      for (const counter of providerFailures) counter.inc({ provider, model, reason });
    },
    countFallback(fromProvider, toProvider) {
      for (const counter of fallbacks) counter.inc({ from_provider: fromProvider, to_provider: toProvider });
    },
    async timeEmbeddingRequest(pending) {
      const started = performance.now();
      try {
        const result = await pending;
        endEmbeddingRequest("success", started);
        return result;
      } catch (error) {
        endEmbeddingRequest("error", started);
        throw error;
      }
    },
    activeRequests: () => readRequestsInFlight(),
    observeStages(timings) {
      stages.tokenize.observe(timings.tokenizationMs / 1000);
      stages.queue.observe(timings.queueMs / 1000);
      stages.inference.observe(timings.inferenceMs / 1000);
      stages.total.observe(timings.totalMs / 1000);
    },
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

