import { performance } from "node:perf_hooks";
import type { CorpusText } from "./corpora.js";
import { percentile } from "./stats.js";

/** One closed-loop run. */
export interface ClosedLoopOptions {
  /** Sends one request with these texts; resolves when its answer is decoded. */
  send(texts: string[]): Promise<void>;
  /** Texts to cycle through; requests take consecutive slices. */
  source: readonly CorpusText[];
  /** Where in `source` to start (callers move it between runs so runs see different texts). */
  offset: number;
  textsPerRequest: number;
  /** Requests in flight at once: each of this many loops sends its next request when the previous one answers. */
  concurrency: number;
  /** No request starts after this long; requests in flight then are awaited and counted. */
  durationMs: number;
}

/** What one run measured. */
export interface ClosedLoopResult {
  requests: number;
  texts: number;
  tokens: number;
  errors: number;
  firstError?: string;
  /** From the first send to the last answer. */
  elapsedMs: number;
  textsPerSecond: number;
  tokensPerSecond: number;
  latencyMs: { p50: number; p95: number; p99: number };
  /** Where the next run should start in `source`. */
  nextOffset: number;
}

/**
 * Runs `concurrency` loops that each send a request, wait for its answer and
 * send the next, until `durationMs` has passed; then waits for the requests in
 * flight. Throughput is texts answered over the time from the first send to the
 * last answer, so a run never ends with work the server accepted but nobody
 * counted (at high concurrency the server's queue stays full until the end).
 */
export async function runClosedLoop(options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const { source, textsPerRequest } = options;
  let cursor = options.offset;
  const latencies: number[] = [];
  let texts = 0;
  let tokens = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const deadline = started + options.durationMs;
  let lastAnswer = started;

  const loop = async () => {
    while (performance.now() < deadline) {
      const batch: CorpusText[] = [];
      for (let index = 0; index < textsPerRequest; index++) batch.push(source[cursor++ % source.length]);
      const sent = performance.now();
      try {
        await options.send(batch.map((entry) => entry.text));
        lastAnswer = performance.now();
        latencies.push(lastAnswer - sent);
        texts += batch.length;
        for (const entry of batch) tokens += entry.tokens;
      } catch (error) {
        lastAnswer = performance.now();
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  const elapsedMs = lastAnswer - started;
  return {
    requests: latencies.length,
    texts,
    tokens,
    errors,
    firstError,
    elapsedMs,
    textsPerSecond: (texts * 1000) / elapsedMs,
    tokensPerSecond: (tokens * 1000) / elapsedMs,
    latencyMs: { p50: percentile(latencies, 0.5), p95: percentile(latencies, 0.95), p99: percentile(latencies, 0.99) },
    nextOffset: cursor % source.length,
  };
}
