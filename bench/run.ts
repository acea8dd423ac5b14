/**
 * `npm run bench`: the benchmarks of issues 2 and 4, in one run on this machine,
 * printed as markdown on stdout (progress goes to stderr). Phases:
 *
 * 1. `model`: precision variants of the default model on a batch of 32 mixed
 *    sentences, and tokenizer throughput (bench/model-precision.ts).
 * 2. `reference`: the TF.js reference on that batch and on the corpora, in its own process.
 * 3. `limits`: A, tokenize + raw onnxruntime inference on length-sorted batches
 *    (bench/inference-limit.ts), and E, bare echo servers on the same transports and
 *    clients (bench/echo-server.ts) at the highest concurrency.
 * 4. `service`: the real service in a child process (bench/service-server.ts) over gRPC,
 *    Connect JSON and REST, short texts 1 per request and passages 32 per request, at
 *    each concurrency: throughput, latency, the server's event-loop delay and CPU time.
 * 5. `peer`: transformers.js against the service over REST, and the service against raw
 *    onnxruntime-node, at fp32 and int8 on a MiniLM-shaped model and mixed-length texts
 *    (bench/peer-transformers-js.ts, issues 6 and 15); runs once the other servers stopped.
 * 6. `flood`: unauthenticated HTTP/2 stream opens and an unread WebSocket client
 *    sending large pings against the service with API-key auth; a bystander's
 *    health calls during the flood and the server's heap before and after (bench/flood.ts).
 * 7. `overload`: SUTRA_MAX_QUEUE=8 and 300 concurrent 32-text REST requests from another
 *    process: who is served, who is refused OVERLOADED and how fast (bench/overload-flood.ts).
 * 8. `sweep` (only when named in `--phases`): the engine settings grid (workers x intra-op
 *    threads, token budget, batch size) on USE-Lite and the MiniLM-shaped model (bench/sweep.ts).
 * 9. `soak` (only when named in `--phases`): minutes of steady mixed-transport load,
 *    the server's RSS after each slice (bench/soak.ts).
 *
 * Phases 1 and 2 run first. Phases 3 and 4 run in rounds (`--runs`, default 3): each
 * round measures A, then E, then every service cell once, so the limits and the service
 * are measured close in time and a change in the machine's background load moves both;
 * the report gives medians over rounds and the targets as medians of per-round ratios.
 * The first round tries every A setting (1 thread x 2 intra-op threads, 2 x 1, batches
 * of 32 and 64); later rounds measure the best one again.
 *
 * Options: `--quick` (one round of 1-second runs, shorter limits, a smaller flood),
 * `--phases model,reference,limits,service,peer,flood,overload,sweep,soak` (default: all but sweep and soak),
 * `--transports grpc,connect-json,rest`, `--workloads short,passages`, `--concurrency 1,8,64`,
 * `--runs N` (rounds), `--duration S` (seconds a run keeps sending), `--limit-seconds S` (per A setting),
 * `--precision-runs N`, `--reference-runs N`, `--reference-batches N`,
 * `--echo-payload embedding,small` (E's answer: "embedding", a 512-float vector, is E; "small" adds a row per transport),
 * `--cpu-prof DIR` (the service child writes a .cpuprofile per thread there), `--json FILE` (raw results),
 * `--flood-streams N` (20000), `--flood-connections N` (20), `--flood-pings N` (400: WebSocket get_state requests), `--flood-ping-bytes N` (262144: their id size),
 * `--sweep-runs N` (1), `--sweep-seconds S` (8), `--soak-minutes M` (10), `--soak-clients N` (64), `--client-nice N` (10: the load clients' niceness
 * while a cell runs, see asRemoteClients; 0 = the clients compete with the server as equals).
 */
import { writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { loadCorpus, type Corpus, type CorpusName } from "./corpora.js";
import { loadBenchModel } from "./default-model.js";
import { measureInferenceLimit, measureLimitSetting, type LimitSetting } from "./inference-limit.js";
import { TRANSPORTS, type TransportName } from "./load-clients.js";
import { formatFloodReport, runFlood } from "./flood.js";
import { formatOverloadFlood, OVERLOAD_FLOOD_DEFAULTS, runOverloadFlood } from "./overload-flood.js";
import { measureModelPrecision } from "./model-precision.js";
import { runPeerComparison } from "./peer-transformers-js.js";
import { runReference } from "./reference.js";
import { formatReport, type BenchPlan, type BenchResults, type EchoPayload } from "./report.js";
import { startServerProcess } from "./server-process.js";
import { createLoadTarget, summarizeRuns, WORKLOADS, type CellKey, type CellRun, type LoadTarget, type WorkloadName } from "./service-load.js";
import { formatSoakReport, runSoak } from "./soak.js";
import { formatSweep, runSweep } from "./sweep.js";
import { setThreadNiceness } from "../src/inference/thread-niceness.js";

const PHASES = ["model", "reference", "limits", "service", "peer", "flood", "overload", "sweep", "soak"] as const;
type Phase = (typeof PHASES)[number];
/** Phases run when `--phases` is not given: the soak takes minutes and runs only when asked for. */
const DEFAULT_PHASES: readonly Phase[] = PHASES.filter((phase) => phase !== "soak" && phase !== "sweep");

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    phases: { type: "string", default: DEFAULT_PHASES.join(",") },
    transports: { type: "string", default: TRANSPORTS.join(",") },
    workloads: { type: "string", default: Object.keys(WORKLOADS).join(",") },
    concurrency: { type: "string", default: "1,8,64" },
    runs: { type: "string" },
    duration: { type: "string" },
    "limit-seconds": { type: "string" },
    "precision-runs": { type: "string" },
    "reference-runs": { type: "string" },
    "reference-batches": { type: "string" },
    "echo-payload": { type: "string", default: "embedding" },
    "cpu-prof": { type: "string" },
    json: { type: "string" },
    "flood-streams": { type: "string" },
    "flood-connections": { type: "string" },
    "flood-pings": { type: "string" },
    "flood-ping-bytes": { type: "string" },
    "sweep-runs": { type: "string" },
    "sweep-seconds": { type: "string" },
    "soak-minutes": { type: "string" },
    "soak-clients": { type: "string" },
    "client-nice": { type: "string" },
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

const clientNice = values["client-nice"] === undefined ? 10 : Number(values["client-nice"]);
if (!Number.isInteger(clientNice) || clientNice < 0 || clientNice > 19) throw new Error(`--client-nice: expected 0..19, got "${values["client-nice"]}"`);
const phases = new Set(listOption<Phase>("phases", values.phases, PHASES));
const transports = listOption<TransportName>("transports", values.transports, TRANSPORTS);
const workloads = listOption<WorkloadName>("workloads", values.workloads, Object.keys(WORKLOADS) as WorkloadName[]);
const echoPayloads = listOption<EchoPayload>("echo-payload", values["echo-payload"], ["small", "embedding"]);
const concurrencies = (values.concurrency ?? "").split(",").map(Number);
if (concurrencies.some((value) => !Number.isInteger(value) || value < 1)) throw new Error(`--concurrency: expected positive integers, got "${values.concurrency}"`);
const plan: BenchPlan = {
  transports,
  workloads,
  concurrencies,
  rounds: numberOption("runs", 3, 1),
  durationMs: numberOption("duration", 3, 1) * 1000,
  warmupMs: quick ? 300 : 800,
  clientNice,
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

/**
 * Runs load clients as the stand-ins for other machines that they are: at
 * niceness `--client-nice` (default 10) for the run, so that on a shared
 * machine the server under test (E and the service alike) is scheduled
 * before its own clients, and back to 0 afterwards, so the limit measurement
 * and servers started later are not affected. Lowering niceness again needs
 * privilege; without it the bench warns and stays niced.
 */
async function asRemoteClients<T>(work: () => Promise<T>): Promise<T> {
  if (clientNice === 0 || !setThreadNiceness(clientNice)) return work();
  try {
    return await work();
  } finally {
    if (!setThreadNiceness(0)) progress(`WARNING: could not set the bench's niceness back to 0 after a load run (it stays ${clientNice})`);
  }
}

const limitSettings: LimitSetting[] = [1, availableParallelism()].flatMap((threads) =>
  [32, 64].map((batchSize) => ({ threads, intraOpThreads: Math.max(1, Math.floor(availableParallelism() / threads)), batchSize })));
const cellKeys: CellKey[] = transports.flatMap((transport) =>
  workloads.flatMap((workload) => concurrencies.map((concurrency) => ({ transport, workload, concurrency }))));
const echoTargets: Array<{ payload: EchoPayload; target: LoadTarget }> = [];
let serviceTarget: LoadTarget | undefined;
try {
  if (phases.has("limits")) {
    for (const payload of echoPayloads) {
      const echo = await startServerProcess(new URL("./echo-server.ts", import.meta.url), { args: ["--payload", payload] });
      echoTargets.push({ payload, target: createLoadTarget(echo, transports, corpora) });
    }
  }
  if (phases.has("service")) {
    const service = await startServerProcess(new URL("./service-server.ts", import.meta.url), { cpuProfileDir: values["cpu-prof"] });
    serviceTarget = createLoadTarget(service, transports, corpora);
    const probe = await fetch(`${service.urls.http1}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ texts: ["which precision runs by default?"] }),
    });
    const servicePrecision = ((await probe.json()) as { model_info?: { precision?: string } }).model_info?.precision ?? "unknown";
    results.model.servicePrecision = servicePrecision;
    if (servicePrecision !== model.precision) progress(`WARNING: the service ran ${servicePrecision}, limit A used ${model.precision}`);
  }
  for (const { payload, target } of echoTargets) {
    progress(`warm-up: echo (${payload})`);
    await target.warmUp(["short"], echoConcurrency, plan.warmupMs);
  }
  if (serviceTarget) {
    progress("warm-up: service");
    await serviceTarget.warmUp(workloads, Math.max(...concurrencies), plan.warmupMs);
  }

  const limitCorpora = [...new Set(workloads.map((workload) => WORKLOADS[workload].corpus))];
  const echoRuns = new Map<string, CellRun[]>();
  const serviceRuns = new Map<string, CellRun[]>();
  const keyOf = (cell: CellKey, payload = "") => `${payload}|${cell.transport}|${cell.workload}|${cell.concurrency}`;
  const record = (runs: Map<string, CellRun[]>, key: string, run: CellRun) => runs.set(key, [...(runs.get(key) ?? []), run]);
  for (let round = 0; round < plan.rounds; round++) {
    progress(`round ${round + 1} of ${plan.rounds}`);
    if (phases.has("limits")) {
      for (const name of limitCorpora) {
        const limit = results.limits[name];
        if (!limit) {
          const settings = await measureInferenceLimit(model, corpora[name], limitSettings, limitMs);
          results.limits[name] = { settings, rounds: [settings[0]] };
        } else {
          limit.rounds.push(await measureLimitSetting(model, corpora[name], limit.settings[0], limitMs));
        }
        progress(`  A ${name}: ${rate(results.limits[name]?.rounds.at(-1)?.textsPerSecond ?? Number.NaN)} texts/s`);
      }
      for (const { payload, target } of echoTargets) {
        for (const transport of transports) {
          const cell: CellKey = { transport, workload: "short", concurrency: echoConcurrency };
          const run = await asRemoteClients(() => target.run(cell, plan.durationMs));
          record(echoRuns, keyOf(cell, payload), run);
          progress(`  E ${payload} ${transport}: ${rate((run.requests * 1000) / run.elapsedMs)} requests/s`);
        }
      }
    }
    const service = serviceTarget;
    if (service) {
      for (const cell of cellKeys) {
        const run = await asRemoteClients(() => service.run(cell, plan.durationMs));
        record(serviceRuns, keyOf(cell), run);
        progress(`  ${cell.transport} ${cell.workload} c${cell.concurrency}: ${rate(run.textsPerSecond)} texts/s, p99 ${run.latencyMs.p99.toFixed(1)} ms, ` +
          `loop p99 ${run.server.loopP99Ms.toFixed(1)} ms${run.errors ? `, ${run.errors} errors (${run.firstError})` : ""}`);
      }
    }
  }
  for (const { payload } of echoTargets) {
    for (const transport of transports) {
      const cell: CellKey = { transport, workload: "short", concurrency: echoConcurrency };
      const runs = echoRuns.get(keyOf(cell, payload)) ?? [];
      results.echo.push({ ...cell, payload, runs, summary: summarizeRuns(runs) });
    }
  }
  if (serviceTarget) {
    results.service = cellKeys.map((cell) => {
      const runs = serviceRuns.get(keyOf(cell)) ?? [];
      return { ...cell, runs, summary: summarizeRuns(runs) };
    });
  }
} finally {
  for (const target of [...echoTargets.map((entry) => entry.target), ...(serviceTarget ? [serviceTarget] : [])]) {
    target.close();
    await target.server.stop();
  }
}
if (phases.has("peer")) {
  results.peer = await runPeerComparison({ runs: quick ? 1 : undefined, progress });
}
const extraSections: string[] = [];
if (phases.has("flood")) {
  const flood = await runFlood({
    streamOpens: numberOption("flood-streams", 20_000, 4_000),
    connections: numberOption("flood-connections", 20, 8),
    webSocketPings: numberOption("flood-pings", 400, 100),
    pingBytes: numberOption("flood-ping-bytes", 256 * 1024, 256 * 1024),
    settleMs: 10_000,
    cpuProfileDir: values["cpu-prof"],
    progress,
  });
  results.flood = flood;
  extraSections.push(formatFloodReport(flood));
}
if (phases.has("overload")) {
  const overload = await runOverloadFlood({ ...OVERLOAD_FLOOD_DEFAULTS, cpuProfileDir: values["cpu-prof"], progress });
  results.overload = overload;
  extraSections.push(formatOverloadFlood(overload));
}
if (phases.has("sweep")) {
  const sweep = await runSweep({ runs: numberOption("sweep-runs", 1, 1), seconds: numberOption("sweep-seconds", 8, 3), progress });
  results.sweep = sweep;
  extraSections.push(formatSweep(sweep));
}
if (phases.has("soak")) {
  const minutes = numberOption("soak-minutes", 10, 1);
  const soak = await runSoak({
    durationMs: minutes * 60_000,
    warmupMs: Math.min(120_000, minutes * 12_000),
    sliceMs: quick ? 5_000 : 20_000,
    clients: numberOption("soak-clients", 64, 64),
    progress,
  }, corpora);
  results.soak = soak;
  extraSections.push(formatSoakReport(soak));
}
results.loadAverage.end = loadAverage();

console.log([formatReport(results), ...extraSections].join("\n"));
if (values.json) writeFileSync(values.json, `${JSON.stringify(results, null, 1)}\n`);
