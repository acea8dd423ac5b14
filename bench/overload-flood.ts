/**
 * `npx tsx bench/overload-flood.ts [--json FILE] [--cpu-prof DIR]`: the queue bound under a burst
 * (issue 15, point 3). The real service runs in a child process (bench/service-server.ts, cache off)
 * with `SUTRA_MAX_QUEUE=8`; a client in another process (this module, forked with `--client`) sends
 * 300 REST requests of 32 distinct texts each at once, one HTTP/1.1 keep-alive connection per request
 * (opened beforehand, so latencies count the server's answer, not TCP set-up), and times each answer
 * from the client. Before the burst the client sends one 32-text request on the idle server, which a
 * bound of 8 must still admit (nothing waits), and which warms the model.
 *
 * Baseline: after the service has stopped, the same client code (a fresh client process, the same
 * 300 requests of the same texts, one connection each, opened beforehand with health calls) floods
 * a bare `node:http` server (bench/echo-server.ts `--payload refuse`) that answers every request at
 * once with the service's 429 OVERLOADED, without reading the body. No server can refuse faster than
 * that through this client on this machine, so its refusal latency is the floor the service's is
 * read against (as the service benchmarks read theirs against a bare "E" server); the client skips
 * the idle request there. The baseline is reported beside the targets, which it does not change.
 *
 * Targets: every request answered within 30 s (no hang), at least one served with 32 vectors of the
 * model's size, every other one refused with 429 OVERLOADED and a `Retry-After` header, refusals at
 * p95 <= 50 ms from the client, no other error. Prints the markdown section of
 * {@link formatOverloadFlood}; `--json FILE` writes the raw result; `--cpu-prof DIR` has the service
 * write a CPU profile per thread there.
 */
import { fork, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import http from "node:http";
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { readCorpusTexts } from "./corpora.js";
import { loadBenchModel } from "./default-model.js";
import { startServerProcess, type ServerPhaseStats, type ServerProcess } from "./server-process.js";
import { percentile } from "./stats.js";

/** The acceptance targets of issue 15, point 3. */
export const OVERLOAD_FLOOD_TARGETS = {
  /** Longest a request may wait for its answer before it counts as a hang. */
  answerTimeoutMs: 30_000,
  /** Refusal latency at p95, from the client. */
  refusalP95Ms: 50,
} as const;

/** The burst the acceptance names. */
export const OVERLOAD_FLOOD_DEFAULTS = { requests: 300, textsPerRequest: 32, maxQueue: 8 } as const;

/** What the flood sends and to which server. */
export interface OverloadFloodOptions {
  /** Requests sent at once, each on a connection of its own. */
  requests: number;
  textsPerRequest: number;
  /** The service's `SUTRA_MAX_QUEUE`. */
  maxQueue: number;
  /** When set, the service writes a CPU profile per thread here (`--cpu-prof`). */
  cpuProfileDir?: string;
  progress(message: string): void;
}

/** How one request ended, as the client saw it. */
export interface RequestOutcome {
  kind: "served" | "refused" | "other" | "hang";
  /** From just before the request was written to the end of its answer's body. */
  ms: number;
  /** The `Retry-After` header in seconds, when a refusal carried a numeric one. */
  retryAfterSeconds?: number;
  /** Served answers: one vector of the model's size, all finite numbers, per text sent. */
  complete?: boolean;
  /** Other errors: the status and the start of the body, or the error's message. */
  detail?: string;
}

/** Latency quantiles in milliseconds (NaN when nothing was measured). */
export interface LatencySummary {
  p50: number;
  p95: number;
  max: number;
}

/** What {@link runOverloadFlood} measured; JSON-serialisable (NaN becomes null). */
export interface OverloadFloodResult {
  options: Omit<OverloadFloodOptions, "progress" | "cpuProfileDir">;
  /** The default model's vector size, which every served vector must have. */
  dimensions: number;
  /** The one request sent to the idle server before the burst (larger than the bound). */
  idle: RequestOutcome;
  /** Distinct sockets the burst's requests went out on. */
  connections: number;
  /** From the first request written to the last answer (or hang) of the burst. */
  elapsedMs: number;
  served: number;
  refused: number;
  otherErrors: number;
  firstOtherError?: string;
  /** Requests with no answer within {@link OVERLOAD_FLOOD_TARGETS.answerTimeoutMs}. */
  hangs: number;
  refusalMs: LatencySummary;
  servedMs: LatencySummary;
  /** Smallest and largest `Retry-After` of the refusals, in seconds. */
  retryAfterSeconds: { min: number; max: number };
  everyRefusalHadRetryAfter: boolean;
  everyServedAnswerComplete: boolean;
  /** The service's own measurements during the burst (event-loop delay, CPU, inference batches). */
  server: ServerPhaseStats;
  /** The same burst from the same client against a bare node:http server refusing every request at once (the floor). */
  bare: { refusalMs: LatencySummary; refused: number };
  /** The targets missed, in words; empty when every target is met. */
  misses: string[];
}

/** The client's plan, sent by the parent over IPC. */
interface ClientPlan {
  url: string;
  requests: number;
  textsPerRequest: number;
  dimensions: number;
  answerTimeoutMs: number;
  /** Send the idle request before opening the burst's connections (false for the bare baseline, which serves nothing). */
  idleRequest: boolean;
}

type ParentMessage = ({ type: "prepare" } & ClientPlan) | { type: "flood" };
type ClientMessage =
  | { type: "prepared"; idle?: RequestOutcome }
  | { type: "flooded"; outcomes: RequestOutcome[]; connections: number; elapsedMs: number };

const SERVICE_SERVER = new URL("./service-server.ts", import.meta.url);
const ECHO_SERVER = new URL("./echo-server.ts", import.meta.url);

/**
 * The texts of request `request` (0 = the idle request): each a query of the corpus followed by a
 * sentence of a passage, taken in step through both lists, so a pair comes back only after
 * lcm(queries, sentences) texts (millions): no two texts of a run are the same, and no cache could help.
 */
function createRequestTexts(textsPerRequest: number): (request: number) => string[] {
  const queries = readCorpusTexts("queries");
  const sentences = [...new Set(readCorpusTexts("passages").flatMap((passage) => passage.split(/(?<=[.!?])\s+/)))];
  return (request) =>
    Array.from({ length: textsPerRequest }, (_, offset) => {
      const index = request * textsPerRequest + offset;
      return `${queries[index % queries.length]}: ${sentences[index % sentences.length]}`;
    });
}

/** An answer the client read in full. */
interface HttpAnswer {
  status: number;
  retryAfter?: string;
  body: string;
  ms: number;
}

/** Raised when a request has no whole answer within its deadline. */
class AnswerTimeout extends Error {}

/** POSTs `body` as JSON on `agent`, adding the socket it goes out on to `sockets`; rejects with AnswerTimeout after `timeoutMs`. */
function postJson(agent: http.Agent, url: URL, body: string, timeoutMs: number, sockets: Set<Socket>): Promise<HttpAnswer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", fail);
      response.on("end", () => {
        clearTimeout(deadline);
        const retryAfter = response.headers["retry-after"];
        resolve({ status: response.statusCode ?? 0, retryAfter, body: Buffer.concat(chunks).toString("utf8"), ms: performance.now() - started });
      });
    });
    const deadline = setTimeout(() => request.destroy(new AnswerTimeout(`no answer within ${timeoutMs} ms`)), timeoutMs);
    function fail(error: Error) {
      clearTimeout(deadline);
      reject(error);
    }
    request.once("socket", (socket) => sockets.add(socket));
    request.on("error", fail);
    request.end(body);
  });
}

/** Sends one request and says how it ended. */
async function sendRequest(agent: http.Agent, plan: ClientPlan, body: string, sockets: Set<Socket>): Promise<RequestOutcome> {
  const started = performance.now();
  let answer: HttpAnswer;
  try {
    answer = await postJson(agent, new URL("/v1/embeddings", plan.url), body, plan.answerTimeoutMs, sockets);
  } catch (error) {
    const ms = performance.now() - started;
    if (error instanceof AnswerTimeout) return { kind: "hang", ms };
    return { kind: "other", ms, detail: error instanceof Error ? error.message : String(error) };
  }
  const other: RequestOutcome = { kind: "other", ms: answer.ms, detail: `HTTP ${answer.status}: ${answer.body.slice(0, 200)}` };
  let parsed: { embeddings?: unknown; error?: { code?: unknown } };
  try {
    parsed = JSON.parse(answer.body) as typeof parsed;
  } catch {
    return other;
  }
  if (answer.status === 200) {
    const vectors = parsed.embeddings;
    const complete =
      Array.isArray(vectors) &&
      vectors.length === plan.textsPerRequest &&
      vectors.every((vector) => Array.isArray(vector) && vector.length === plan.dimensions && vector.every((value) => Number.isFinite(value)));
    return { kind: "served", ms: answer.ms, complete };
  }
  if (answer.status === 429 && parsed.error?.code === "OVERLOADED") {
    const retryAfterSeconds = answer.retryAfter === undefined ? Number.NaN : Number(answer.retryAfter);
    return { kind: "refused", ms: answer.ms, ...(Number.isFinite(retryAfterSeconds) ? { retryAfterSeconds } : {}) };
  }
  return other;
}

/**
 * The client process: on "prepare" it sends the idle request (when the plan asks for it) and opens one keep-alive connection
 * per burst request (concurrent health calls); on "flood" it sends the whole burst at once, reports
 * every outcome and exits.
 */
function runClient(): void {
  const send = (message: ClientMessage, then?: () => void) => process.send?.(message, undefined, {}, then);
  let plan: ClientPlan | undefined;
  let agent: http.Agent | undefined;
  process.on("message", async (message: ParentMessage) => {
    if (message.type === "prepare") {
      plan = message;
      agent = new http.Agent({ keepAlive: true, maxSockets: plan.requests, maxFreeSockets: plan.requests });
      const texts = createRequestTexts(plan.textsPerRequest);
      const idle = plan.idleRequest ? await sendRequest(agent, plan, JSON.stringify({ texts: texts(0) }), new Set()) : undefined;
      const health = new URL("/v1/health", plan.url);
      const connected = Array.from({ length: plan.requests }, () =>
        new Promise<void>((resolve, reject) => {
          http.get(health, { agent }, (response) => response.resume().on("end", resolve)).on("error", reject);
        }));
      await Promise.all(connected);
      send({ type: "prepared", ...(idle ? { idle } : {}) });
    } else if (message.type === "flood" && plan && agent) {
      const [flood, floodAgent] = [plan, agent];
      const texts = createRequestTexts(flood.textsPerRequest);
      const bodies = Array.from({ length: flood.requests }, (_, index) => JSON.stringify({ texts: texts(index + 1) }));
      const sockets = new Set<Socket>();
      const started = performance.now();
      const outcomes = await Promise.all(bodies.map((body) => sendRequest(floodAgent, flood, body, sockets)));
      const elapsedMs = performance.now() - started;
      floodAgent.destroy();
      send({ type: "flooded", outcomes, connections: sockets.size, elapsedMs }, () => process.exit(0));
    }
  });
}

/** Resolves with the child's next message of `type`; rejects when it exits first. */
function nextMessage<Type extends ClientMessage["type"]>(child: ChildProcess, type: Type): Promise<Extract<ClientMessage, { type: Type }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: ClientMessage) => {
      if (message.type !== type) return;
      child.off("exit", onExit);
      child.off("message", onMessage);
      resolve(message as Extract<ClientMessage, { type: Type }>);
    };
    const onExit = (code: number | null) => {
      child.off("message", onMessage);
      reject(new Error(`the flood client exited (code ${code}) while the bench waited for "${type}"`));
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

/** Starts bench/service-server.ts with `SUTRA_MAX_QUEUE` set. */
function startBoundedService(maxQueue: number, cpuProfileDir: string | undefined): Promise<ServerProcess> {
  return startServerProcess(SERVICE_SERVER, { cpuProfileDir, env: { SUTRA_MAX_QUEUE: String(maxQueue) } });
}

const summarize = (values: number[]): LatencySummary => ({
  p50: percentile(values, 0.5),
  p95: percentile(values, 0.95),
  max: values.length > 0 ? Math.max(...values) : Number.NaN,
});

/** The targets `result` misses, in words. */
function findMisses(result: Omit<OverloadFloodResult, "misses">): string[] {
  const misses: string[] = [];
  const { textsPerRequest } = result.options;
  if (result.hangs > 0) misses.push(`${result.hangs} requests had no answer within ${OVERLOAD_FLOOD_TARGETS.answerTimeoutMs / 1000} s`);
  if (result.served < 1) misses.push("no request was served");
  if (result.otherErrors > 0) misses.push(`${result.otherErrors} other errors (first: ${result.firstOtherError})`);
  if (!(result.refusalMs.p95 <= OVERLOAD_FLOOD_TARGETS.refusalP95Ms)) misses.push(`refusal p95 ${result.refusalMs.p95.toFixed(1)} ms > ${OVERLOAD_FLOOD_TARGETS.refusalP95Ms} ms`);
  if (!result.everyRefusalHadRetryAfter) misses.push("a refusal had no Retry-After");
  if (!result.everyServedAnswerComplete) misses.push(`a served answer did not hold ${textsPerRequest} vectors of ${result.dimensions} numbers`);
  if (result.idle.kind !== "served" || !result.idle.complete) misses.push(`the ${textsPerRequest}-text request on the idle server was not served whole (${result.idle.detail ?? result.idle.kind})`);
  return misses;
}

/** What one client process saw of one burst. */
interface BurstOutcome {
  idle?: RequestOutcome;
  outcomes: RequestOutcome[];
  connections: number;
  elapsedMs: number;
}

/**
 * Forks a client process, has it prepare against `url` (the idle request when `idleRequest`, then
 * one connection per request), awaits `afterPrepare` with the idle outcome, sends the burst and resolves with what the
 * client saw. The client has exited or is killed before it resolves or rejects.
 */
async function runClientBurst(
  plan: Omit<ClientPlan, "url" | "idleRequest">,
  url: string,
  idleRequest: boolean,
  afterPrepare: (idle: RequestOutcome | undefined) => Promise<void>,
): Promise<BurstOutcome> {
  const client = fork(new URL(import.meta.url), ["--client"], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  try {
    const prepared = nextMessage(client, "prepared");
    client.send({ type: "prepare", ...plan, url, idleRequest } satisfies ParentMessage);
    const { idle } = await prepared;
    await afterPrepare(idle);
    const flooded = nextMessage(client, "flooded");
    client.send({ type: "flood" } satisfies ParentMessage);
    const { outcomes, connections, elapsedMs } = await flooded;
    return { idle, outcomes, connections, elapsedMs };
  } finally {
    if (client.exitCode === null) client.kill();
  }
}

const outcomesOf = (outcomes: RequestOutcome[], kind: RequestOutcome["kind"]) => outcomes.filter((outcome) => outcome.kind === kind);

/**
 * Runs the burst against a fresh service child process with `SUTRA_MAX_QUEUE=options.maxQueue`
 * and the cache off, from a client child process, and measures it; then, the service stopped, the
 * same burst from a fresh client process against a bare echo server refusing every request
 * (bench/echo-server.ts `--payload refuse`). Stops every process before it resolves or rejects.
 */
export async function runOverloadFlood(options: OverloadFloodOptions): Promise<OverloadFloodResult> {
  const { progress, cpuProfileDir, ...plan } = options;
  const { manifest } = await loadBenchModel();
  const clientPlan = {
    requests: plan.requests,
    textsPerRequest: plan.textsPerRequest,
    dimensions: manifest.dimensions,
    answerTimeoutMs: OVERLOAD_FLOOD_TARGETS.answerTimeoutMs,
  };
  const server = await startBoundedService(plan.maxQueue, cpuProfileDir);
  let burst: BurstOutcome;
  let serverStats: ServerPhaseStats;
  try {
    burst = await runClientBurst(clientPlan, server.urls.http1, true, async (idle) => {
      progress(`overload flood: idle ${plan.textsPerRequest}-text request ${idle?.kind} in ${idle?.ms.toFixed(0)} ms; ${plan.requests} connections open`);
      await server.beginPhase();
    });
    serverStats = await server.endPhase();
  } finally {
    await server.stop();
  }
  const { outcomes, connections, elapsedMs } = burst;
  const idle: RequestOutcome = burst.idle ?? { kind: "other", ms: Number.NaN, detail: "the client sent no idle request" };
  const refused = outcomesOf(outcomes, "refused");
  const served = outcomesOf(outcomes, "served");
  const others = outcomesOf(outcomes, "other");
  const retryAfters = refused.flatMap((outcome) => (outcome.retryAfterSeconds === undefined ? [] : [outcome.retryAfterSeconds]));
  progress(`overload flood: ${served.length} served, ${refused.length} refused, ${others.length} other errors, ${outcomesOf(outcomes, "hang").length} hangs`);

  const echo = await startServerProcess(ECHO_SERVER, { args: ["--stack", "bare", "--payload", "refuse"] });
  let bareBurst: BurstOutcome;
  try {
    bareBurst = await runClientBurst(clientPlan, echo.urls.http1, false, async () => {
      progress(`overload flood: bare baseline, ${plan.requests} connections open`);
    });
  } finally {
    await echo.stop();
  }
  const bareRefused = outcomesOf(bareBurst.outcomes, "refused");
  const bare = { refusalMs: summarize(bareRefused.map((outcome) => outcome.ms)), refused: bareRefused.length };
  const bareOthers = outcomesOf(bareBurst.outcomes, "other");
  progress(
    `overload flood: bare baseline ${bare.refused} refused, ${bareOthers.length} other errors${bareOthers.length > 0 ? ` (first: ${bareOthers[0].detail})` : ""}, ` +
      `${outcomesOf(bareBurst.outcomes, "hang").length} hangs; refusal p95 ${bare.refusalMs.p95.toFixed(1)} ms`,
  );

  const measured: Omit<OverloadFloodResult, "misses"> = {
    options: plan,
    dimensions: manifest.dimensions,
    idle,
    connections,
    elapsedMs,
    served: served.length,
    refused: refused.length,
    otherErrors: others.length,
    ...(others.length > 0 ? { firstOtherError: others[0].detail } : {}),
    hangs: outcomesOf(outcomes, "hang").length,
    refusalMs: summarize(refused.map((outcome) => outcome.ms)),
    servedMs: summarize(served.map((outcome) => outcome.ms)),
    retryAfterSeconds: retryAfters.length > 0 ? { min: Math.min(...retryAfters), max: Math.max(...retryAfters) } : { min: Number.NaN, max: Number.NaN },
    everyRefusalHadRetryAfter: retryAfters.length === refused.length,
    everyServedAnswerComplete: served.every((outcome) => outcome.complete),
    server: serverStats,
    bare,
  };
  return { ...measured, misses: findMisses(measured) };
}

/** The overload flood's markdown section: a table of what the client saw and the server measured, and a verdict against the targets. */
export function formatOverloadFlood(result: OverloadFloodResult): string {
  const { requests, textsPerRequest, maxQueue } = result.options;
  const ms = (value: number) => `${value.toFixed(1)} ms`;
  const yesNo = (value: boolean) => (value ? "yes" : "no");
  const batches = result.server.counters.batches ?? 0;
  const meanBatch = batches > 0 ? (result.server.counters.batchedTexts ?? 0) / batches : Number.NaN;
  const verdict = result.misses.length === 0 ? "**Verdict: meets every target.**" : `**Verdict: misses ${result.misses.length} target(s):** ${result.misses.join("; ")}.`;
  return [
    `## Overload flood (SUTRA_MAX_QUEUE=${maxQueue}, ${requests} concurrent ${textsPerRequest}-text REST requests)`,
    "",
    `The service in a child process (cache off); the client in another, one HTTP/1.1 keep-alive connection per request, opened beforehand; ` +
      `every text distinct. Latencies from the client, request written to answer read. ` +
      `Baseline: the same burst from the same client code against a bare node:http server that answers every request at once ` +
      `with the same 429 OVERLOADED, without reading the body: the floor of refusal latency through this client on this machine.`,
    "",
    "| measure | value | target |",
    "|---|---|---|",
    `| requests | ${requests} over ${result.connections} connections, all answered after ${ms(result.elapsedMs)} | |`,
    `| served | ${result.served} | >= 1 |`,
    `| refused OVERLOADED (429) | ${result.refused} | the rest |`,
    `| other errors | ${result.otherErrors}${result.firstOtherError ? ` (first: ${result.firstOtherError})` : ""} | 0 |`,
    `| hangs (no answer within ${OVERLOAD_FLOOD_TARGETS.answerTimeoutMs / 1000} s) | ${result.hangs} | 0 |`,
    `| refusal latency p50 / p95 / max | ${ms(result.refusalMs.p50)} / ${ms(result.refusalMs.p95)} / ${ms(result.refusalMs.max)} | p95 <= ${OVERLOAD_FLOOD_TARGETS.refusalP95Ms} ms |`,
    `| bare node:http server refusing every request at once (same client): p50 / p95 / max | ` +
      `${ms(result.bare.refusalMs.p50)} / ${ms(result.bare.refusalMs.p95)} / ${ms(result.bare.refusalMs.max)} (${result.bare.refused} of ${requests} refused) | baseline |`,
    `| served latency p50 / p95 | ${ms(result.servedMs.p50)} / ${ms(result.servedMs.p95)} | |`,
    `| every refusal had a Retry-After | ${yesNo(result.everyRefusalHadRetryAfter)} (${result.retryAfterSeconds.min}-${result.retryAfterSeconds.max} s) | yes |`,
    `| every served answer had ${textsPerRequest} vectors of ${result.dimensions} numbers | ${yesNo(result.everyServedAnswerComplete)} | yes |`,
    `| ${textsPerRequest}-text request on the idle server (bound ${maxQueue}) | ${result.idle.kind}${result.idle.complete ? ", whole" : ""} in ${ms(result.idle.ms)} | served |`,
    `| server during the burst | event-loop delay p99 ${ms(result.server.loopP99Ms)}, max ${ms(result.server.loopMaxMs)}; main thread ${(result.server.mainThreadUtilization * 100).toFixed(0)}% busy; ` +
      `CPU ${result.server.cpuMs.toFixed(0)} ms; ${batches} inference batches of ${meanBatch.toFixed(1)} texts on average | |`,
    "",
    `The service's refusal p95 is ${(result.refusalMs.p95 / result.bare.refusalMs.p95).toFixed(2)}x the bare server's ` +
      `(${ms(result.refusalMs.p95)} vs ${ms(result.bare.refusalMs.p95)}).`,
    "",
    verdict,
    "",
  ].join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({ options: { client: { type: "boolean", default: false }, json: { type: "string" }, "cpu-prof": { type: "string" } } });
  if (values.client) {
    runClient();
  } else {
    const result = await runOverloadFlood({
      ...OVERLOAD_FLOOD_DEFAULTS,
      cpuProfileDir: values["cpu-prof"],
      progress: (message) => process.stderr.write(`${message}\n`),
    });
    if (values.json) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(formatOverloadFlood(result));
  }
}
