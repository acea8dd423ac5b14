/**
 * The soak phase (docs/SECURITY.md): the real service in a child process under
 * steady load for minutes — 64 closed-loop clients split over gRPC, Connect JSON
 * and REST, short texts one per request with every fourth slice sending
 * passages 32 per request on REST — with the server's RSS and heap read after
 * every slice. Growth is judged from the end of the warm-up to the end of the
 * run; any failure other than a refusal (OVERLOADED, RATE_LIMITED) is an error.
 */
import { performance } from "node:perf_hooks";
import { runClosedLoop, type ClosedLoopResult } from "./closed-loop.js";
import type { Corpus, CorpusName } from "./corpora.js";
import { createLoadClient, TRANSPORTS, type TransportName } from "./load-clients.js";
import { startServerProcess, type ServerMemory } from "./server-process.js";

/** What the soak runs. */
export interface SoakOptions {
  durationMs: number;
  /** Load before the reading growth is judged from. */
  warmupMs: number;
  /** Length of one slice; memory is read after each. */
  sliceMs: number;
  /** Clients in all, split evenly over the transports. */
  clients: number;
  progress(message: string): void;
}

/** One slice of the soak. */
export interface SoakSlice {
  atMs: number;
  memory: ServerMemory;
  texts: number;
  requests: number;
  refusals: number;
  errors: number;
  firstError?: string;
}

/** What the soak measured. */
export interface SoakResult {
  options: Omit<SoakOptions, "progress">;
  slices: SoakSlice[];
  /** The reading at the end of the warm-up and at the end. */
  warm: ServerMemory;
  end: ServerMemory;
}

const REFUSAL = /OVERLOADED|RATE_LIMITED|resource_exhausted|HTTP 429/i;

/** Runs the soak against a fresh service child process. */
export async function runSoak(options: SoakOptions, corpora: Record<CorpusName, Corpus>): Promise<SoakResult> {
  const { progress, ...plan } = options;
  const server = await startServerProcess(new URL("./service-server.ts", import.meta.url));
  const clients = new Map(TRANSPORTS.map((transport) => [transport, createLoadClient(transport, server.urls)]));
  const offsets: Record<CorpusName, number> = { queries: 0, passages: 0 };
  const share = (index: number) => Math.floor(plan.clients / TRANSPORTS.length) + (index < plan.clients % TRANSPORTS.length ? 1 : 0);
  const slices: SoakSlice[] = [];
  let warm: ServerMemory | undefined;
  try {
    const started = performance.now();
    for (let slice = 0; performance.now() - started < plan.durationMs; slice++) {
      const passagesSlice = slice % 4 === 3;
      const runs = await Promise.all(TRANSPORTS.map((transport: TransportName, index) => {
        const passages = passagesSlice && transport === "rest";
        const corpus: CorpusName = passages ? "passages" : "queries";
        const client = clients.get(transport);
        if (!client) throw new Error(`no client for ${transport}`);
        return runClosedLoop({
          send: (texts) => client.embed(texts),
          source: corpora[corpus].texts,
          offset: offsets[corpus] + index * 97,
          textsPerRequest: passages ? 32 : 1,
          concurrency: passages ? Math.max(1, share(index) >> 3) : share(index),
          durationMs: plan.sliceMs,
        });
      }));
      offsets.queries = runs[0].nextOffset;
      if (passagesSlice) offsets.passages = runs[TRANSPORTS.indexOf("rest")].nextOffset;
      const memory = await server.memory(false);
      const entry = summarizeSlice(performance.now() - started, memory, runs);
      slices.push(entry);
      if (warm === undefined && entry.atMs >= plan.warmupMs) warm = memory;
      progress(`soak ${(entry.atMs / 1000).toFixed(0)} s: RSS ${(memory.rssBytes / 2 ** 20).toFixed(0)} MiB, heap ${(memory.heapUsedBytes / 2 ** 20).toFixed(0)} MiB, ` +
        `${entry.texts} texts, ${entry.refusals} refused, ${entry.errors} errors${entry.firstError ? ` (${entry.firstError})` : ""}`);
    }
  } finally {
    for (const client of clients.values()) client.close();
    await server.stop();
  }
  const last = slices.at(-1);
  if (!last) throw new Error("the soak ran no slice");
  return { options: plan, slices, warm: warm ?? last.memory, end: last.memory };
}

function summarizeSlice(atMs: number, memory: ServerMemory, runs: ClosedLoopResult[]): SoakSlice {
  const slice: SoakSlice = { atMs, memory, texts: 0, requests: 0, refusals: 0, errors: 0 };
  for (const run of runs) {
    slice.texts += run.texts;
    slice.requests += run.requests;
    // A run counts failures without keeping them all; the first one says which kind this run's were.
    if (run.errors > 0 && REFUSAL.test(run.firstError ?? "")) slice.refusals += run.errors;
    else slice.errors += run.errors;
    slice.firstError ??= run.errors > 0 ? run.firstError : undefined;
  }
  return slice;
}

/** The soak's markdown section: memory after warm-up and at the end, errors, and one row per slice. */
export function formatSoakReport(result: SoakResult): string {
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
  const growth = ((result.end.rssBytes - result.warm.rssBytes) / result.warm.rssBytes) * 100;
  const errors = result.slices.reduce((sum, slice) => sum + slice.errors, 0);
  const refusals = result.slices.reduce((sum, slice) => sum + slice.refusals, 0);
  const texts = result.slices.reduce((sum, slice) => sum + slice.texts, 0);
  return [
    `## Soak (${(result.options.durationMs / 60_000).toFixed(0)} min, ${result.options.clients} clients over ${TRANSPORTS.join(", ")})`,
    "",
    "| measure | value | target |",
    "|---|---|---|",
    `| RSS after ${(result.options.warmupMs / 1000).toFixed(0)} s warm-up / at the end | ${mib(result.warm.rssBytes)} / ${mib(result.end.rssBytes)} MiB (${growth >= 0 ? "+" : ""}${growth.toFixed(1)} %) | growth < 10 % |`,
    `| heap after warm-up / at the end | ${mib(result.warm.heapUsedBytes)} / ${mib(result.end.heapUsedBytes)} MiB | |`,
    `| texts answered | ${texts} (${((texts * 1000) / (result.slices.at(-1)?.atMs ?? 1)).toFixed(0)} texts/s) | |`,
    `| refusals / other errors | ${refusals} / ${errors} | 0 other errors |`,
    "",
    "| at (s) | RSS (MiB) | heap (MiB) | texts | refused | errors |",
    "|---|---|---|---|---|---|",
    ...result.slices.map((slice) => `| ${(slice.atMs / 1000).toFixed(0)} | ${mib(slice.memory.rssBytes)} | ${mib(slice.memory.heapUsedBytes)} | ${slice.texts} | ${slice.refusals} | ${slice.errors} |`),
    "",
  ].join("\n");
}
