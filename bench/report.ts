/**
 * Renders one benchmark run (bench/run.ts) as markdown: setup, the model
 * section of issue 2, the limits A and E, the service cells, the TF.js peer,
 * the targets of issue 4 as ratios against the limits of the same run, and the
 * transformers.js peer of issue 6.
 */
import type { FloodResult } from "./flood.js";
import type { OverloadFloodResult } from "./overload-flood.js";
import type { SweepResult } from "./sweep.js";
import type { SoakResult } from "./soak.js";
import type { Corpus, CorpusName } from "./corpora.js";
import type { LimitResult, LimitSetting } from "./inference-limit.js";
import { TRANSPORT_LABELS, type TransportName } from "./load-clients.js";
import { formatModelPrecision, type ModelPrecisionReport } from "./model-precision.js";
import { formatPeerResult, type PeerResult } from "./peer-transformers-js.js";
import type { ReferenceReport } from "./reference.js";
import { LOOP_RESOLUTION_MS } from "./server-process.js";
import { WORKLOADS, type CellResult, type CellRun, type WorkloadName } from "./service-load.js";
import { median } from "./stats.js";

/** Answers of the echo servers (bench/echo-server.ts `--payload`). */
export type EchoPayload = "small" | "embedding";

/** What the limits and service phases run. */
export interface BenchPlan {
  transports: TransportName[];
  workloads: WorkloadName[];
  concurrencies: number[];
  /** Rounds: each measures A, E and every service cell once. */
  rounds: number;
  /** How long each run keeps sending. */
  durationMs: number;
  /** Unmeasured load per server and transport before the first round. */
  warmupMs: number;
  /** Niceness of the load clients while a cell runs (0: they compete with the server as equals). */
  clientNice: number;
}

/** Limit A on one corpus: every setting in the first round (best first), then the best setting once per round. */
export interface LimitRounds {
  settings: LimitResult[];
  rounds: LimitResult[];
}

/** Everything one run measured, as bench/run.ts collects it (also what `--json` writes). */
export interface BenchResults {
  startedAt: string;
  machine: { cpu: string; cores: number; node: string; onnxruntime: string };
  loadAverage: { start: string; end: string };
  model: { id: string; maxTokens: number; precision: string; servicePrecision?: string };
  profile: { tier: string; workers: number; intraOpThreads: number; tokenBudget: number; maxBatchSize: number };
  corpora: Record<CorpusName, Pick<Corpus, "minTokens" | "maxTokens" | "totalTokens"> & { texts: number }>;
  plan: BenchPlan;
  limitMs: number;
  precision?: ModelPrecisionReport;
  reference?: ReferenceReport;
  limits: Partial<Record<CorpusName, LimitRounds>>;
  echoConcurrency: number;
  echo: Array<CellResult & { payload: EchoPayload }>;
  service: CellResult[];
  /** The transformers.js comparison of issue 6, when its phase ran. */
  peer?: PeerResult;
  flood?: FloodResult;
  overload?: OverloadFloodResult;
  sweep?: SweepResult;
  soak?: SoakResult;
}

const fixed = (value: number | undefined, digits = 0) => (value !== undefined && Number.isFinite(value) ? value.toFixed(digits) : "n/a");
const ms = (value: number | undefined) => (value !== undefined && Number.isFinite(value) ? (value < 10 ? value.toFixed(2) : value.toFixed(1)) : "n/a");
const percent = (value: number) => (Number.isFinite(value) ? `${(value * 100).toFixed(0)}%` : "n/a");
const ratio = (value: number) => (Number.isFinite(value) ? value.toFixed(2) : "n/a");
const verdict = (passed: boolean | undefined) => (passed === undefined ? "n/a" : passed ? "met" : "**not met**");
const settingLabel = (setting: LimitSetting) =>
  `${setting.threads} thread${setting.threads > 1 ? "s" : ""} x ${setting.intraOpThreads} intra-op, batch ${setting.batchSize}`;
/** CPU time per text of one run, server and client together. */
const runCpuPerText = (run: CellRun) => ((run.server.cpuMs + run.clientCpuMs) * 1000) / run.texts;
const runRequestsPerSecond = (run: CellRun) => (run.requests * 1000) / run.elapsedMs;
/** Median over rounds of `ratio(round)`, for the rounds every input has. */
const medianOverRounds = (rounds: number, ratioOf: (round: number) => number) => median(Array.from({ length: rounds }, (_, round) => ratioOf(round)));

/** The run as markdown. */
export function formatReport(results: BenchResults): string {
  const lines: string[] = [];
  const print = (...added: string[]) => lines.push(...added);
  const { plan, corpora, profile } = results;
  /** A of a corpus: the best setting of the first round, rates as medians over rounds. */
  const bestLimit = (name: CorpusName) => {
    const limit = results.limits[name];
    if (!limit) return undefined;
    return {
      setting: limit.settings[0],
      rounds: limit.rounds,
      textsPerSecond: median(limit.rounds.map((round) => round.textsPerSecond)),
      tokensPerSecond: median(limit.rounds.map((round) => round.tokensPerSecond)),
      cpuUsPerText: median(limit.rounds.map((round) => round.cpuUsPerText)),
    };
  };
  const idealPayload: EchoPayload = results.echo.some((cell) => cell.payload === "embedding") ? "embedding" : "small";
  const echoFor = (transport: TransportName) => results.echo.find((cell) => cell.transport === transport && cell.payload === idealPayload);
  const serviceCell = (transport: TransportName, workload: WorkloadName, concurrency: number) =>
    results.service.find((cell) => cell.transport === transport && cell.workload === workload && cell.concurrency === concurrency);
  const meanTokens = (name: CorpusName) => fixed(corpora[name].totalTokens / corpora[name].texts, 1);

  print(
    "# Sutra Embedder benchmark",
    "",
    `Run ${results.startedAt}; ${results.machine.cpu}, ${results.machine.cores} cores; node ${results.machine.node}; onnxruntime-node ${results.machine.onnxruntime}.`,
    `Load average (1, 5, 15 min) at start: ${results.loadAverage.start}; at end: ${results.loadAverage.end}.`,
    `Model: ${results.model.id}, precision ${results.model.precision} (the service's default on this host; the service answered ${results.model.servicePrecision ?? "n/a"}); ` +
      `profile ${profile.tier}: ${profile.workers} workers x ${profile.intraOpThreads} intra-op threads, token budget ${profile.tokenBudget}, at most ${profile.maxBatchSize} texts per batch.`,
    `Corpora: ${corpora.queries.texts} short texts (${corpora.queries.minTokens}-${corpora.queries.maxTokens} tokens, mean ${meanTokens("queries")}), ` +
      `${corpora.passages.texts} passages (${corpora.passages.minTokens}-${corpora.passages.maxTokens} tokens, mean ${meanTokens("passages")}).`,
    `Limits and service: ${plan.rounds} round${plan.rounds > 1 ? "s" : ""}, each measuring A, E and every service cell once (runs send for ${plan.durationMs / 1000} s, then await their requests in flight); ` +
      "figures are medians over rounds, target ratios medians of per-round ratios. " +
      (plan.clientNice > 0
        ? `The load clients stand in for other machines: they run at nice +${plan.clientNice} while a cell runs, so the server under test (E and the service alike) gets the cores first.`
        : "The load clients run at the server's priority and compete with it for the cores."),
    "",
  );

  if (results.precision) {
    print("## Model: precision variants and tokenizer (issue 2)", "", ...formatModelPrecision(results.precision, results.model.maxTokens, results.reference?.mixed.medianMs), "");
  }

  const limitEntries = Object.entries(results.limits) as Array<[CorpusName, LimitRounds]>;
  if (limitEntries.length > 0 || results.echo.length > 0) {
    print(
      "## Limits measured in this run",
      "",
      `A: tokenize + raw onnxruntime-node inference (${results.model.precision}), texts sorted by token length, in worker threads of one process, no server; ` +
        `${results.limitMs / 1000} s per setting; CPU is the whole process's. Every setting ran in the first round; the best one (A) ran again in each later round.`,
      "",
      "| corpus | setting (first round) | texts/s | tokens/s | CPU µs/text |",
      "|---|---|---:|---:|---:|",
    );
    for (const [name, limit] of limitEntries) {
      for (const result of limit.settings) {
        print(`| ${name} | ${settingLabel(result)} | ${fixed(result.textsPerSecond)} | ${fixed(result.tokensPerSecond)} | ${fixed(result.cpuUsPerText)} |`);
      }
      const best = bestLimit(name);
      print(
        `| ${name} | **A**: ${best ? settingLabel(best.setting) : "n/a"}, median of ${limit.rounds.length} round${limit.rounds.length > 1 ? "s" : ""} ` +
          `(${limit.rounds.map((round) => fixed(round.textsPerSecond)).join(", ")}) | **${fixed(best?.textsPerSecond)}** | ${fixed(best?.tokensPerSecond)} | ${fixed(best?.cpuUsPerText)} |`,
      );
    }
    print(
      "",
      `E: bare echo servers (a plain @grpc/grpc-js server for gRPC, a plain node:http handler for Connect JSON and REST) on the same clients, 1 short text per request, concurrency ${results.echoConcurrency}. ` +
        `Answer "embedding": the service's response shape with one 512-float embedding, serialised on every call (this is E); "small": one empty embedding (what serialising a vector costs, by difference).`,
      "",
      "| transport | answer | requests/s | p50 ms | p99 ms | server loop p99 ms | server main busy | server CPU µs/request | client CPU µs/request |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|",
      ...results.echo.map(({ transport, payload, summary }) =>
        `| ${TRANSPORT_LABELS[transport]} | ${payload} | ${fixed(summary.requestsPerSecond)} | ${ms(summary.latencyMs.p50)} | ${ms(summary.latencyMs.p99)} | ` +
        `${ms(summary.loopP99Ms)} | ${percent(summary.mainThreadUtilization)} | ${fixed(summary.serverCpuUsPerText)} | ${fixed(summary.clientCpuUsPerText)} |`),
      "",
    );
  }

  if (results.service.length > 0) {
    print(
      "## Service",
      "",
      `Loop p99: event-loop delay of the server's main thread (\`monitorEventLoopDelay\`, ${LOOP_RESOLUTION_MS} ms resolution, values include it); ` +
        "main busy: its event-loop utilisation; mean batch: texts per inference batch (the service's `sutra_batch_size`); " +
        "server CPU: the whole server process (main thread, inference workers); client CPU: the bench process.",
      "",
    );
    for (const workload of plan.workloads) {
      const limit = bestLimit(WORKLOADS[workload].corpus);
      print(
        `### ${WORKLOADS[workload].label}`,
        "",
        "| transport | concurrency | texts/s | tokens/s | p50 ms | p95 ms | p99 ms | loop p99 ms | main busy | mean batch | server CPU µs/text | client CPU µs/text | vs A | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
      );
      for (const { transport, concurrency, summary } of results.service.filter((cell) => cell.workload === workload)) {
        print(
          `| ${TRANSPORT_LABELS[transport]} | ${concurrency} | ${fixed(summary.textsPerSecond)} | ${fixed(summary.tokensPerSecond)} | ${ms(summary.latencyMs.p50)} | ` +
            `${ms(summary.latencyMs.p95)} | ${ms(summary.latencyMs.p99)} | ${ms(summary.loopP99Ms)} | ${percent(summary.mainThreadUtilization)} | ${fixed(summary.meanBatchSize, 1)} | ` +
            `${fixed(summary.serverCpuUsPerText)} | ${fixed(summary.clientCpuUsPerText)} | ${ratio(summary.textsPerSecond / (limit?.textsPerSecond ?? Number.NaN))} | ` +
            `${summary.errors}${summary.firstError ? ` (${summary.firstError})` : ""} |`,
        );
      }
      print("");
    }
  }

  if (results.reference) {
    print(
      "## Peers on the same texts",
      "",
      "TF.js reference (@energetic-ai/embeddings, WASM backend, its own process) on batches of 32 from the start of each corpus; " +
        "the service's best cell and A from this run.",
      "",
      "| corpus | TF.js texts/s (texts timed) | service best texts/s | A texts/s | service vs TF.js |",
      "|---|---:|---:|---:|---:|",
    );
    for (const name of ["queries", "passages"] as const) {
      const timing = results.reference.corpora[name];
      const tfjs = timing.texts / timing.seconds;
      const rates = results.service.filter((cell) => WORKLOADS[cell.workload].corpus === name).map((cell) => cell.summary.textsPerSecond);
      const best = rates.length > 0 ? Math.max(...rates) : Number.NaN;
      print(`| ${name} | ${fixed(tfjs)} (${timing.texts}) | ${fixed(best)} | ${fixed(bestLimit(name)?.textsPerSecond)} | ${ratio(best / tfjs)} |`);
    }
    print("");
  }

  if (results.service.length > 0 && (limitEntries.length > 0 || results.echo.length > 0)) {
    const top = results.echoConcurrency;
    const grpcPassages = serviceCell("grpc", "passages", 8);
    const passageLimit = bestLimit("passages");
    const passageRounds = Math.min(grpcPassages?.runs.length ?? 0, passageLimit?.rounds.length ?? 0);
    const passageRatio = medianOverRounds(passageRounds, (round) =>
      (grpcPassages?.runs[round].textsPerSecond ?? Number.NaN) / (passageLimit?.rounds[round].textsPerSecond ?? Number.NaN));
    const passageCpuRatio = medianOverRounds(passageRounds, (round) =>
      (passageLimit?.rounds[round].cpuUsPerText ?? Number.NaN) / (grpcPassages ? runCpuPerText(grpcPassages.runs[round]) : Number.NaN));
    print(
      "## Targets (issue 4)",
      "",
      "Ratios of the service to the limits measured in the same round, median over rounds. CPU ratio: the same comparison in CPU time per text " +
        "(the limit's CPU over the service's server + client CPU), which a shared machine disturbs less than wall-clock throughput.",
      "",
      "| check | measured | limit | ratio | CPU ratio | target | verdict |",
      "|---|---:|---:|---:|---:|---:|---|",
      `| gRPC, passages 32/request, concurrency 8, vs A | ${fixed(grpcPassages?.summary.textsPerSecond)} texts/s | A ${fixed(passageLimit?.textsPerSecond)} | ` +
        `${ratio(passageRatio)} | ${ratio(passageCpuRatio)} | >= 0.90 | ${verdict(passageRounds > 0 ? passageRatio >= 0.9 : undefined)} |`,
    );
    for (const transport of plan.transports) {
      const cell = serviceCell(transport, "short", top);
      const echo = echoFor(transport);
      const a = bestLimit("queries");
      const rounds = Math.min(cell?.runs.length ?? 0, echo?.runs.length ?? 0, a?.rounds.length ?? 0);
      const idealOf = (round: number) =>
        1 / (1 / (a?.rounds[round].textsPerSecond ?? Number.NaN) + 1 / (echo ? runRequestsPerSecond(echo.runs[round]) : Number.NaN));
      const ideal = medianOverRounds(rounds, idealOf);
      const value = medianOverRounds(rounds, (round) => (cell?.runs[round].textsPerSecond ?? Number.NaN) / idealOf(round));
      const cpuValue = medianOverRounds(rounds, (round) =>
        ((a?.rounds[round].cpuUsPerText ?? Number.NaN) + (echo ? runCpuPerText(echo.runs[round]) : Number.NaN)) / (cell ? runCpuPerText(cell.runs[round]) : Number.NaN));
      print(
        `| ${TRANSPORT_LABELS[transport]}, short texts 1/request, concurrency ${top}, vs 1/(1/A + 1/E) | ${fixed(cell?.summary.textsPerSecond)} texts/s | ` +
          `ideal ${fixed(ideal)} (A ${fixed(a?.textsPerSecond)}, E ${fixed(echo?.summary.requestsPerSecond)}) | ${ratio(value)} | ${ratio(cpuValue)} | >= 0.80 | ` +
          `${verdict(rounds > 0 ? value >= 0.8 : undefined)} |`,
      );
    }
    for (const { transport, workload, summary } of results.service.filter((cell) => cell.concurrency === top)) {
      print(
        `| event-loop delay p99, ${TRANSPORT_LABELS[transport]}, ${WORKLOADS[workload].label}, concurrency ${top} | ${ms(summary.loopP99Ms)} ms (worst run ${ms(summary.worstLoopP99Ms)}) | | | | < 20 ms | ` +
          `${verdict(Number.isFinite(summary.worstLoopP99Ms) ? summary.worstLoopP99Ms < 20 : undefined)} |`,
      );
    }
    print("");
  }
  if (results.peer) print(formatPeerResult(results.peer));
  return lines.join("\n");
}
