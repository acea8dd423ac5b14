/**
 * Drives a server child process (the real service or the bare echo servers)
 * with closed-loop clients over each transport, workload and concurrency, and
 * collects per-run throughput, latency and the server's event-loop delay.
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

/** Which cells to run and how long. */
export interface LoadPlan {
  transports: readonly TransportName[];
  workloads: readonly WorkloadName[];
  concurrencies: readonly number[];
  /** Runs per cell; the cell reports medians over them. */
  runs: number;
  /** How long each run keeps sending (requests in flight then are awaited). */
  durationMs: number;
  /**
   * Load sent per transport and workload before the first cell, not counted
   * (connections, ONNX sessions, JIT): short texts at the highest concurrency,
   * passages at concurrency 2 (a round of 64 x 32 passages takes seconds).
   */
  warmupMs: number;
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

/** One transport x workload x concurrency cell. */
export interface CellResult {
  transport: TransportName;
  workload: WorkloadName;
  concurrency: number;
  runs: CellRun[];
  summary: CellSummary;
}

function summarize(runs: CellRun[]): CellSummary {
  const of = (pick: (run: CellRun) => number) => median(runs.map(pick));
  return {
    textsPerSecond: of((run) => run.textsPerSecond),
    requestsPerSecond: of((run) => (run.requests * 1000) / run.elapsedMs),
    tokensPerSecond: of((run) => run.tokensPerSecond),
    latencyMs: { p50: of((run) => run.latencyMs.p50), p95: of((run) => run.latencyMs.p95), p99: of((run) => run.latencyMs.p99) },
    loopP99Ms: of((run) => run.server.loopP99Ms),
    worstLoopP99Ms: Math.max(...runs.map((run) => run.server.loopP99Ms)),
    mainThreadUtilization: of((run) => run.server.mainThreadUtilization),
    serverCpuUsPerText: of((run) => (run.server.cpuMs * 1000) / run.texts),
    clientCpuUsPerText: of((run) => (run.clientCpuMs * 1000) / run.texts),
    meanBatchSize: of((run) => (run.server.counters.batches ? (run.server.counters.batchedTexts ?? Number.NaN) / run.server.counters.batches : Number.NaN)),
    errors: runs.reduce((sum, run) => sum + run.errors, 0),
    firstError: runs.find((run) => run.firstError)?.firstError,
  };
}

/**
 * Runs every cell of `plan` against `server`, transport by transport (one
 * client per transport, reused by its cells), and returns the cells in order.
 * `onCell` is told about each finished cell (progress on stderr).
 */
export async function runLoadPlan(
  server: ServerProcess,
  corpora: Record<CorpusName, Corpus>,
  plan: LoadPlan,
  onCell?: (cell: CellResult) => void,
): Promise<CellResult[]> {
  const cells: CellResult[] = [];
  const offsets: Record<CorpusName, number> = { queries: 0, passages: 0 };
  for (const transport of plan.transports) {
    const client = createLoadClient(transport, server.urls);
    try {
      const load = async (workload: WorkloadName, concurrency: number, durationMs: number) => {
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
      for (const workload of plan.workloads) {
        await load(workload, workload === "short" ? Math.max(...plan.concurrencies) : 2, plan.warmupMs);
      }
      for (const workload of plan.workloads) {
        for (const concurrency of plan.concurrencies) {
          const runs: CellRun[] = [];
          for (let run = 0; run < plan.runs; run++) {
            await server.beginPhase();
            const cpuAtStart = process.cpuUsage();
            const result = await load(workload, concurrency, plan.durationMs);
            const clientCpu = process.cpuUsage(cpuAtStart);
            runs.push({ ...result, server: await server.endPhase(), clientCpuMs: (clientCpu.user + clientCpu.system) / 1000 });
          }
          const cell = { transport, workload, concurrency, runs, summary: summarize(runs) };
          cells.push(cell);
          onCell?.(cell);
        }
      }
    } finally {
      client.close();
    }
  }
  return cells;
}
