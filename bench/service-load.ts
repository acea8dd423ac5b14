/**
 * Drives a server child process (the real service or the bare echo servers)
 * with closed-loop clients over each transport, workload and concurrency, and
 * collects per-run throughput, latency, and the server's own measurements.
 */
import { runClosedLoop, type ClosedLoopResult } from "./closed-loop.js";
import type { Corpus, CorpusName } from "./corpora.js";
import { createLoadClient, type TransportName } from "./load-clients.js";
import type { ServerPhaseStats, ServerProcess } from "./server-process.js";
import { median } from "./stats.js";

/** The two request shapes of issue 4. */
export const WORKLOADS = {
  /** Single short texts (queries of 5-20 tokens), one per request: the online search path. */
  short: { corpus: "queries", textsPerRequest: 1, label: "short texts, 1 per request" },
  /** Passages of 60-128 tokens, 32 per request: batched ingestion. */
  passages: { corpus: "passages", textsPerRequest: 32, label: "passages, 32 per request" },
} as const satisfies Record<string, { corpus: CorpusName; textsPerRequest: number; label: string }>;

/** One of {@link WORKLOADS}. */
export type WorkloadName = keyof typeof WORKLOADS;

/** One transport x workload x concurrency cell. */
export interface CellKey {
  transport: TransportName;
  workload: WorkloadName;
  concurrency: number;
}

/** The medians over a cell's runs. */
export interface CellSummary {
  textsPerSecond: number;
  requestsPerSecond: number;
  tokensPerSecond: number;
  latencyMs: { p50: number; p95: number; p99: number };
  /** Median over runs of the server main thread's event-loop delay p99, and the largest p99 of any run. */
  loopP99Ms: number;
  worstLoopP99Ms: number;
  /** Server main thread's event-loop utilisation, 0..1. */
  mainThreadUtilization: number;
  /** CPU time per text answered: the whole server process, and the bench's client process. */
  serverCpuUsPerText: number;
  clientCpuUsPerText: number;
  /** Mean texts per inference batch, where the server counts its batches (the service; NaN for echo servers). */
  meanBatchSize: number;
  errors: number;
  firstError?: string;
}

/** One run of a cell: the client's view, the server's own measurements, and the client process's CPU time. */
export type CellRun = ClosedLoopResult & { server: ServerPhaseStats; clientCpuMs: number };

/** A cell with its runs (in round order) and their medians. */
export interface CellResult extends CellKey {
  runs: CellRun[];
  summary: CellSummary;
}

/** Medians over a cell's runs (worst run for the loop delay, sums for errors). */
export function summarizeRuns(runs: CellRun[]): CellSummary {
  const of = (pick: (run: CellRun) => number) => median(runs.map(pick));
  return {
    textsPerSecond: of((run) => run.textsPerSecond),
    requestsPerSecond: of((run) => (run.requests * 1000) / run.elapsedMs),
    tokensPerSecond: of((run) => run.tokensPerSecond),
    latencyMs: { p50: of((run) => run.latencyMs.p50), p95: of((run) => run.latencyMs.p95), p99: of((run) => run.latencyMs.p99) },
    loopP99Ms: of((run) => run.server.loopP99Ms),
    worstLoopP99Ms: runs.length > 0 ? Math.max(...runs.map((run) => run.server.loopP99Ms)) : Number.NaN,
    mainThreadUtilization: of((run) => run.server.mainThreadUtilization),
    serverCpuUsPerText: of((run) => (run.server.cpuMs * 1000) / run.texts),
    clientCpuUsPerText: of((run) => (run.clientCpuMs * 1000) / run.texts),
    meanBatchSize: of((run) => (run.server.counters.batches ? (run.server.counters.batchedTexts ?? Number.NaN) / run.server.counters.batches : Number.NaN)),
    errors: runs.reduce((sum, run) => sum + run.errors, 0),
    firstError: runs.find((run) => run.firstError)?.firstError,
  };
}

/** A server under load: one client per transport, kept open across rounds. */
export interface LoadTarget {
  server: ServerProcess;
  /**
   * Sends load that is not measured (connections, ONNX sessions, JIT): short
   * texts at `concurrency`, passages at concurrency 2 (a round of 64 x 32
   * passages takes seconds), for `durationMs` each, over every transport.
   */
  warmUp(workloads: readonly WorkloadName[], concurrency: number, durationMs: number): Promise<void>;
  /** One measured run of a cell: the server's measurements are reset before and read after. */
  run(cell: CellKey, durationMs: number): Promise<CellRun>;
  /** Closes the clients (the server keeps running). */
  close(): void;
}

/**
 * Creates the clients for `transports` against `server`. Requests take
 * consecutive texts of their corpus, continuing across runs, so runs do not
 * all repeat the first texts.
 */
export function createLoadTarget(server: ServerProcess, transports: readonly TransportName[], corpora: Record<CorpusName, Corpus>): LoadTarget {
  const clients = new Map(transports.map((transport) => [transport, createLoadClient(transport, server.urls)]));
  const offsets: Record<CorpusName, number> = { queries: 0, passages: 0 };
  const load = async ({ transport, workload, concurrency }: CellKey, durationMs: number) => {
    const client = clients.get(transport);
    if (!client) throw new Error(`no client for ${transport}`);
    const { corpus, textsPerRequest } = WORKLOADS[workload];
    const result = await runClosedLoop({
      send: (texts) => client.embed(texts),
      source: corpora[corpus].texts,
      offset: offsets[corpus],
      textsPerRequest,
      concurrency,
      durationMs,
    });
    offsets[corpus] = result.nextOffset;
    return result;
  };
  return {
    server,
    async warmUp(workloads, concurrency, durationMs) {
      for (const transport of transports) {
        for (const workload of workloads) await load({ transport, workload, concurrency: workload === "short" ? concurrency : 2 }, durationMs);
      }
    },
    async run(cell, durationMs) {
      await server.beginPhase();
      const cpuAtStart = process.cpuUsage();
      const result = await load(cell, durationMs);
      const clientCpu = process.cpuUsage(cpuAtStart);
      return { ...result, server: await server.endPhase(), clientCpuMs: (clientCpu.user + clientCpu.system) / 1000 };
    },
    close() {
      for (const client of clients.values()) client.close();
    },
  };
}
