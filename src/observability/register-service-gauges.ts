import { Gauge } from "prom-client";
import type { HealthReport, ModelDescription } from "../domain/types.js";
import type { Metrics } from "./metrics.js";

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
