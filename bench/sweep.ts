/**
 * The engine settings sweep of issue 15: which workers x intra-op threads, token budget and
 * most texts per batch serve best on this host, for the default model (USE-Lite) and for a
 * transformer (the MiniLM-shaped model of the peer phase), so the hardware profile's numbers
 * come from a measurement anyone can repeat.
 *
 * For every setting the real service runs in a child process (bench/service-server.ts, cache
 * off) with the setting as `sutra serve` environment variables (`SUTRA_WORKERS`,
 * `SUTRA_INTRA_OP_THREADS`, `SUTRA_TOKEN_BUDGET`, `SUTRA_MAX_BATCH_SIZE`), and closed-loop REST
 * clients send, for `--seconds` each after a short warm-up:
 * - USE-Lite passages, 32 per request, 8 clients (ingestion);
 * - USE-Lite short queries, 1 per request, 64 clients (search traffic);
 * - MiniLM-shaped mixed texts (bench/mixed-texts.ts), 32 per request, 16 clients, int8 (its
 *   default variant), served as the default model from the peer phase's folder.
 * Reported per cell: texts/s, mean texts per batch and the padding share of the batches'
 * tokens (`sutra_batch_tokens_total`). Rounds (`--runs`) repeat the whole grid; medians.
 *
 * Run alone on a quiet machine: `npx tsx bench/sweep.ts [--runs N] [--seconds S] [--json FILE]`;
 * `npm run bench -- --phases sweep` runs it too.
 */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { runClosedLoop } from "./closed-loop.js";
import { readCorpusTexts, type CorpusText } from "./corpora.js";
import { createLoadClient } from "./load-clients.js";
import { bertTokenCount, mixedTexts } from "./mixed-texts.js";
import { writeMiniLmShapedModel } from "./peer-transformers-js.js";
import { startServerProcess } from "./server-process.js";
import { median } from "./stats.js";

const SERVICE_SERVER = new URL("./service-server.ts", import.meta.url);

/** One engine setting of the grid. */
export interface EngineSetting {
  workers: number;
  intraOpThreads: number;
  tokenBudget: number;
  maxBatchSize: number;
}

/** The grid for a 2-core host: both ways of using two cores, three budgets, two batch caps. */
export const SWEEP_GRID: EngineSetting[] = [
  { workers: 2, intraOpThreads: 1 },
  { workers: 1, intraOpThreads: 2 },
].flatMap((layout) => [4096, 8192, 16384].flatMap((tokenBudget) => [32, 64].map((maxBatchSize) => ({ ...layout, tokenBudget, maxBatchSize }))));

/** A workload of the sweep. */
interface SweepWorkload {
  id: "use-lite-passages" | "use-lite-short" | "minilm-mixed";
  model: "use-lite" | "minilm";
  textsPerRequest: number;
  concurrency: number;
}

const WORKLOADS: SweepWorkload[] = [
  { id: "use-lite-passages", model: "use-lite", textsPerRequest: 32, concurrency: 8 },
  { id: "use-lite-short", model: "use-lite", textsPerRequest: 1, concurrency: 64 },
  { id: "minilm-mixed", model: "minilm", textsPerRequest: 32, concurrency: 16 },
];

/** One cell: a setting under a workload, medians over rounds. */
export interface SweepCell {
  setting: EngineSetting;
  workload: SweepWorkload["id"];
  textsPerSecond: number;
  meanBatch: number;
  paddingShare: number;
  errors: number;
  firstError?: string;
  roundTextsPerSecond: number[];
}

/** The sweep's result: every cell, and per workload the best setting. */
export interface SweepResult {
  runs: number;
  seconds: number;
  cells: SweepCell[];
}

/** Runs the grid `runs` times; `progress` hears each cell. */
export async function runSweep(options: { runs: number; seconds: number; progress: (message: string) => void }): Promise<SweepResult> {
  const { runs, seconds, progress } = options;
  const texts = mixedTexts();
  // The peer phase's models folder (the MiniLM-shaped model is built there when missing).
  const modelsDir = join(tmpdir(), "sutra-bench-peer");
  await writeMiniLmShapedModel(modelsDir, texts);
  const sources: Record<SweepWorkload["id"], CorpusText[]> = {
    "use-lite-passages": readCorpusTexts("passages").map((text) => ({ text, tokens: 0 })),
    "use-lite-short": readCorpusTexts("queries").map((text) => ({ text, tokens: 0 })),
    "minilm-mixed": texts.map((text) => ({ text, tokens: Math.min(256, bertTokenCount(text)) })),
  };
  const measured = new Map<string, Array<{ textsPerSecond: number; batches: number; texts: number; content: number; padding: number; errors: number; firstError?: string }>>();
  for (let round = 0; round < runs; round++) {
    for (const setting of SWEEP_GRID) {
      for (const model of ["use-lite", "minilm"] as const) {
        const env: Record<string, string> = {
          SUTRA_WORKERS: String(setting.workers),
          SUTRA_INTRA_OP_THREADS: String(setting.intraOpThreads),
          SUTRA_TOKEN_BUDGET: String(setting.tokenBudget),
          SUTRA_MAX_BATCH_SIZE: String(setting.maxBatchSize),
          ...(model === "minilm" ? { SUTRA_DEFAULT_MODEL: "minilm-shaped" } : {}),
        };
        const server = await startServerProcess(SERVICE_SERVER, { env, args: model === "minilm" ? ["--models-dir", modelsDir] : [] });
        const client = createLoadClient("rest", server.urls);
        try {
          for (const workload of WORKLOADS.filter((candidate) => candidate.model === model)) {
            const loop = (durationMs: number, offset: number) => runClosedLoop({
              send: (batch) => client.embed(batch),
              source: sources[workload.id],
              offset,
              textsPerRequest: workload.textsPerRequest,
              concurrency: workload.concurrency,
              durationMs,
            });
            await loop(2_000, 0);
            await server.beginPhase();
            const run = await loop(seconds * 1000, round * 997);
            const { counters } = await server.endPhase();
            const key = `${JSON.stringify(setting)}|${workload.id}`;
            measured.set(key, [...(measured.get(key) ?? []), {
              textsPerSecond: run.textsPerSecond,
              batches: counters.batches ?? 0,
              texts: counters.batchedTexts ?? 0,
              content: counters.contentTokens ?? 0,
              padding: counters.paddingTokens ?? 0,
              errors: run.errors,
              firstError: run.firstError,
            }]);
            progress(`sweep round ${round + 1}: ${describe(setting)} ${workload.id}: ${run.textsPerSecond.toFixed(0)} texts/s`);
          }
        } finally {
          client.close();
          await server.stop();
        }
      }
    }
  }
  const cells = SWEEP_GRID.flatMap((setting) => WORKLOADS.map((workload): SweepCell => {
    const rounds = measured.get(`${JSON.stringify(setting)}|${workload.id}`) ?? [];
    const sum = (pick: (entry: (typeof rounds)[number]) => number) => rounds.reduce((total, entry) => total + pick(entry), 0);
    return {
      setting,
      workload: workload.id,
      textsPerSecond: median(rounds.map((entry) => entry.textsPerSecond)),
      meanBatch: sum((entry) => entry.texts) / sum((entry) => entry.batches),
      paddingShare: sum((entry) => entry.padding) / (sum((entry) => entry.content) + sum((entry) => entry.padding)),
      errors: sum((entry) => entry.errors),
      firstError: rounds.find((entry) => entry.firstError)?.firstError,
      roundTextsPerSecond: rounds.map((entry) => entry.textsPerSecond),
    };
  }));
  return { runs, seconds, cells };
}

function describe(setting: EngineSetting): string {
  return `${setting.workers}x${setting.intraOpThreads} threads, budget ${setting.tokenBudget}, batch <= ${setting.maxBatchSize}`;
}

/** The sweep as a markdown section: one row per setting, texts/s per workload (the best of each in bold). */
export function formatSweep(result: SweepResult): string {
  const best = new Map(WORKLOADS.map((workload) => {
    const cells = result.cells.filter((cell) => cell.workload === workload.id);
    return [workload.id, Math.max(...cells.map((cell) => cell.textsPerSecond))];
  }));
  const rows = SWEEP_GRID.map((setting) => {
    const cellsOf = WORKLOADS.map((workload) => {
      const cell = result.cells.find((candidate) => candidate.setting === setting && candidate.workload === workload.id)!;
      const rate = cell.textsPerSecond.toFixed(0);
      const shown = cell.textsPerSecond === best.get(workload.id) ? `**${rate}**` : rate;
      return `${shown} (batch ${cell.meanBatch.toFixed(1)}, ${(cell.paddingShare * 100).toFixed(0)}% padding${cell.errors > 0 ? `, ${cell.errors} errors, first: ${cell.firstError}` : ""})`;
    });
    return `| ${setting.workers} x ${setting.intraOpThreads} | ${setting.tokenBudget} | ${setting.maxBatchSize} | ${cellsOf.join(" | ")} |`;
  });
  return [
    "## Engine settings sweep (issue 15)",
    "",
    `REST, cache off, ${result.seconds} s per cell after a 2 s warm-up, medians of ${result.runs} round(s); texts/s (mean texts per batch, padding share of batch tokens).`,
    "",
    "| workers x intra-op threads | token budget | max batch | USE-Lite passages, 32 x 8 clients | USE-Lite short, 1 x 64 clients | MiniLM-shaped mixed int8, 32 x 16 clients |",
    "|---|---:|---:|---|---|---|",
    ...rows,
    "",
  ].join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({ options: { runs: { type: "string", default: "1" }, seconds: { type: "string", default: "8" }, json: { type: "string" } } });
  const result = await runSweep({ runs: Number(values.runs), seconds: Number(values.seconds), progress: (message) => process.stderr.write(`[sweep] ${message}\n`) });
  console.log(formatSweep(result));
  if (values.json) writeFileSync(values.json, `${JSON.stringify(result, null, 1)}\n`);
}
