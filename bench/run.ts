/**
 * `npm run bench`: the benchmarks of issues 2 and 4, in one run on this machine,
 * printed as markdown on stdout (progress goes to stderr). Phases, in the order they run:
 *
 * 1. `model`: precision variants of the default model on a batch of 32 mixed
 *    sentences, and tokenizer throughput (bench/model-precision.ts).
 * 2. `reference`: the TF.js reference on that batch and on the corpora, in its own process.
 * 3. `limits`: A, tokenize + raw onnxruntime inference on length-sorted batches for
 *    several thread/batch settings (bench/inference-limit.ts); E, bare echo servers on the
 *    same transports and clients (bench/echo-server.ts) at the highest concurrency.
 * 4. `service`: the real service in a child process (bench/service-server.ts) over gRPC,
 *    Connect JSON and REST, short texts 1 per request and passages 32 per request, at
 *    each concurrency: throughput, latency, the server's event-loop delay and CPU time.
 * The report (bench/report.ts) ends with the targets of issue 4 as ratios against the
 * limits measured in the same run.
 *
 * Options: `--quick` (one 1-second run per cell, shorter limits), `--phases model,reference,limits,service`,
 * `--transports grpc,connect-json,rest`, `--workloads short,passages`, `--concurrency 1,8,64`,
 * `--runs N`, `--duration S` (seconds a run keeps sending), `--limit-seconds S` (per A setting),
 * `--precision-runs N`, `--reference-runs N`, `--reference-batches N`,
 * `--echo-payload small,embedding` (E's answer; "embedding" adds a row per transport),
 * `--cpu-prof DIR` (the service child writes a .cpuprofile per thread there), `--json FILE` (raw results).
 */
import { writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { loadCorpus, type Corpus, type CorpusName } from "./corpora.js";
import { loadBenchModel } from "./default-model.js";
import { measureInferenceLimit, type LimitSetting } from "./inference-limit.js";
import { TRANSPORTS, type TransportName } from "./load-clients.js";
import { measureModelPrecision } from "./model-precision.js";
import { runReference } from "./reference.js";
import { formatReport, type BenchResults, type EchoPayload } from "./report.js";
import { startServerProcess } from "./server-process.js";
import { runLoadPlan, WORKLOADS, type LoadPlan, type WorkloadName } from "./service-load.js";

const PHASES = ["model", "reference", "limits", "service"] as const;
type Phase = (typeof PHASES)[number];

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    phases: { type: "string", default: PHASES.join(",") },
    transports: { type: "string", default: TRANSPORTS.join(",") },
    workloads: { type: "string", default: Object.keys(WORKLOADS).join(",") },
    concurrency: { type: "string", default: "1,8,64" },
    runs: { type: "string" },
    duration: { type: "string" },
    "limit-seconds": { type: "string" },
    "precision-runs": { type: "string" },
    "reference-runs": { type: "string" },
    "reference-batches": { type: "string" },
    "echo-payload": { type: "string", default: "small" },
    "cpu-prof": { type: "string" },
    json: { type: "string" },
  },
});

function listOption<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T[] {
  const items = (value ?? "").split(",").map((item) => item.trim()).filter(Boolean);
  if (items.length === 0 || items.some((item) => !allowed.includes(item as T))) {
    throw new Error(`--${name}: expected some of ${allowed.join(", ")}; got "${value}"`);
  }
  return items as T[];
}

const quick = values.quick ?? false;
function numberOption(name: string, full: number, fast: number): number {
  const given = values[name as keyof typeof values];
  const parsed = typeof given === "string" ? Number(given) : quick ? fast : full;
  if (!Number.isFinite(parsed) || parsed <= 0) throw new Error(`--${name}: expected a positive number, got "${given}"`);
  return parsed;
}

const phases = new Set(listOption<Phase>("phases", values.phases, PHASES));
const transports = listOption<TransportName>("transports", values.transports, TRANSPORTS);
const workloads = listOption<WorkloadName>("workloads", values.workloads, Object.keys(WORKLOADS) as WorkloadName[]);
const echoPayloads = listOption<EchoPayload>("echo-payload", values["echo-payload"], ["small", "embedding"]);
const concurrencies = (values.concurrency ?? "").split(",").map(Number);
if (concurrencies.some((value) => !Number.isInteger(value) || value < 1)) throw new Error(`--concurrency: expected positive integers, got "${values.concurrency}"`);
const plan: LoadPlan = {
  transports,
  workloads,
  concurrencies,
  runs: numberOption("runs", 3, 1),
  durationMs: numberOption("duration", 3, 1) * 1000,
  warmupMs: quick ? 300 : 800,
};
const limitMs = numberOption("limit-seconds", 2.5, 1) * 1000;
const echoConcurrency = Math.max(...concurrencies);

const progress = (message: string) => process.stderr.write(`[bench] ${message}\n`);
const loadAverage = () => loadavg().map((value) => value.toFixed(2)).join(", ");
const rate = (value: number) => value.toFixed(0);

const model = await loadBenchModel();
const corpora: Record<CorpusName, Corpus> = { queries: loadCorpus("queries", model.tokenizer), passages: loadCorpus("passages", model.tokenizer) };
const results: BenchResults = {
  startedAt: new Date().toISOString(),
  machine: { cpu: cpus()[0]?.model ?? "cpu", cores: availableParallelism(), node: process.version, onnxruntime: ort.env.versions.node ?? "unknown" },
  loadAverage: { start: loadAverage(), end: "" },
  model: { id: model.manifest.id, maxTokens: model.manifest.maxTokens, precision: model.precision },
  profile: {
    tier: model.profile.tier,
    workers: model.profile.workers,
    intraOpThreads: model.profile.intraOpThreads,
    tokenBudget: model.profile.tokenBudget,
    maxBatchSize: model.profile.maxBatchSize,
  },
  corpora: {
    queries: { texts: corpora.queries.texts.length, minTokens: corpora.queries.minTokens, maxTokens: corpora.queries.maxTokens, totalTokens: corpora.queries.totalTokens },
    passages: { texts: corpora.passages.texts.length, minTokens: corpora.passages.minTokens, maxTokens: corpora.passages.maxTokens, totalTokens: corpora.passages.totalTokens },
  },
  plan,
  limitMs,
  limits: {},
  echoConcurrency,
  echo: [],
  service: [],
};

if (phases.has("model")) {
  const runs = numberOption("precision-runs", 30, 5);
  progress(`model: ${Object.keys(model.manifest.variants).join(", ")} x ${runs} runs`);
  results.precision = await measureModelPrecision(model, runs, quick ? 0.5 : 2);
}

if (phases.has("reference")) {
  const runs = numberOption("reference-runs", 5, 2);
  const batches = numberOption("reference-batches", 3, 1);
  progress(`reference: TF.js, ${runs} mixed batches and ${batches} batches of 32 of each corpus`);
  results.reference = await runReference(runs, batches);
}

if (phases.has("limits")) {
  const settings: LimitSetting[] = [1, availableParallelism()].flatMap((threads) =>
    [32, 64].map((batchSize) => ({ threads, intraOpThreads: Math.max(1, Math.floor(availableParallelism() / threads)), batchSize })));
  for (const name of new Set(workloads.map((workload) => WORKLOADS[workload].corpus))) {
    progress(`limit A on ${name}: ${settings.length} settings x ${limitMs / 1000} s`);
    results.limits[name] = await measureInferenceLimit(model, corpora[name], settings, limitMs);
    progress(`  best: ${rate(results.limits[name]?.[0]?.textsPerSecond ?? Number.NaN)} texts/s`);
  }
  for (const payload of echoPayloads) {
    progress(`limit E: echo servers (${payload} answer), short texts at concurrency ${echoConcurrency}`);
    const echo = await startServerProcess(new URL("./echo-server.ts", import.meta.url), { args: ["--payload", payload] });
    try {
      const cells = await runLoadPlan(echo, corpora, { ...plan, workloads: ["short"], concurrencies: [echoConcurrency] }, (cell) =>
        progress(`  echo ${cell.transport}: ${rate(cell.summary.requestsPerSecond)} requests/s`));
      results.echo.push(...cells.map((cell) => ({ ...cell, payload })));
    } finally {
      await echo.stop();
    }
  }
}

if (phases.has("service")) {
  progress(`service: ${transports.join(", ")} x ${workloads.join(", ")} x concurrency ${concurrencies.join(", ")} x ${plan.runs} runs of ${plan.durationMs / 1000} s`);
  const service = await startServerProcess(new URL("./service-server.ts", import.meta.url), { cpuProfileDir: values["cpu-prof"] });
  try {
    const probe = await fetch(`${service.urls.http1}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ texts: ["which precision runs by default?"] }),
    });
    const servicePrecision = ((await probe.json()) as { model_info?: { precision?: string } }).model_info?.precision ?? "unknown";
    results.model.servicePrecision = servicePrecision;
    if (servicePrecision !== model.precision) progress(`WARNING: the service ran ${servicePrecision}, limit A used ${model.precision}`);
    results.service = await runLoadPlan(service, corpora, plan, ({ transport, workload, concurrency, summary }) =>
      progress(`  ${transport} ${workload} c${concurrency}: ${rate(summary.textsPerSecond)} texts/s, p99 ${summary.latencyMs.p99.toFixed(1)} ms, ` +
        `loop p99 ${summary.loopP99Ms.toFixed(1)} ms${summary.errors ? `, ${summary.errors} errors (${summary.firstError})` : ""}`));
  } finally {
    await service.stop();
  }
}
results.loadAverage.end = loadAverage();

console.log(formatReport(results));
if (values.json) writeFileSync(values.json, `${JSON.stringify(results, null, 1)}\n`);
