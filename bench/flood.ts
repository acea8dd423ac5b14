/**
 * The flood phase (docs/SECURITY.md): the real service with API-key
 * authentication in a child process, attacked on loopback by clients without a
 * key that open HTTP/2 streams as fast as the server lets them (grpc.health.v1
 * Watch, which is open to probes, and StreamEmbeddings, which needs a key), and
 * by one authenticated WebSocket client that stops reading and sends
 * `get_state` requests with large ids (each answered as large). Meanwhile another client calls `GET /v1/health` on a fresh
 * connection every {@link PROBE_INTERVAL_MS}. After the attackers leave the bench
 * waits, forces a garbage collection in the server and compares its heap with
 * the reading taken before the flood.
 */
import { fork } from "node:child_process";
import http2 from "node:http2";
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { WebSocket } from "ws";
import { startServerProcess, type ServerMemory } from "./server-process.js";
import { percentile } from "./stats.js";

/** How often the bystander asks for health during the flood. */
const PROBE_INTERVAL_MS = 100;

/** Longest an attacker waits for its streams to be answered before it holds what it has. */
const ATTACK_WAIT_MS = 60_000;

/** The key the server accepts; the stream attackers never send it. */
const BENCH_KEY = "flood-bench-key";

/** What the flood sends. */
export interface FloodOptions {
  /** Stream opens in all, spread over `connections` HTTP/2 connections. */
  streamOpens: number;
  connections: number;
  /** `get_state` requests (the bench's "pings") the unread WebSocket client sends, each with an id of `pingBytes`. */
  webSocketPings: number;
  pingBytes: number;
  /** Wait after the attackers leave, before the forced collection. */
  settleMs: number;
  /** When set, the service writes a CPU profile per thread here (`--cpu-prof`). */
  cpuProfileDir?: string;
  progress(message: string): void;
}

/** What the flood phase measured. */
export interface FloodResult {
  options: Omit<FloodOptions, "progress">;
  before: ServerMemory;
  /** Largest reading while the flood ran (no forced collection). */
  peak: ServerMemory;
  after: ServerMemory;
  streams: {
    /** Streams that got an HTTP/2 response (headers; trailers-only refusals included). */
    answered: number;
    /** Streams the server reset or refused before answering. */
    reset: number;
    /** Answers by grpc-status (0 = a Watch that stayed open until the attacker left). */
    statuses: Record<string, number>;
    elapsedMs: number;
  };
  webSocket: { sent: number; closeCode?: number; elapsedMs: number };
  health: { probes: number; failed: number; p50Ms: number; maxMs: number };
}

const EMPTY_GRPC_MESSAGE = Buffer.from([0, 0, 0, 0, 0]);

/** Opens `count` unauthenticated gRPC streams on one connection, keeping each open until `leave` fires. */
async function floodConnection(url: string, count: number, leave: AbortSignal, tally: FloodResult["streams"]): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(url);
  session.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    session.once("connect", () => resolve());
    session.once("error", reject);
  });
  const paths = ["/grpc.health.v1.Health/Watch", "/sutra.embedder.v1.EmbedderService/StreamEmbeddings"];
  const settled: Promise<void>[] = [];
  for (let index = 0; index < count && !leave.aborted && !session.closed; index++) {
    const stream = session.request({
      ":method": "POST",
      ":path": paths[index % paths.length],
      "content-type": "application/grpc",
      te: "trailers",
    });
    settled.push(new Promise<void>((resolve) => {
      let answered = false;
      stream.on("response", (headers) => {
        answered = true;
        tally.answered++;
        const status = headers["grpc-status"];
        if (status !== undefined) tally.statuses[String(status)] = (tally.statuses[String(status)] ?? 0) + 1;
        resolve();
      });
      stream.on("trailers", (trailers) => {
        const status = String(trailers["grpc-status"] ?? "none");
        tally.statuses[status] = (tally.statuses[status] ?? 0) + 1;
      });
      stream.on("error", () => undefined);
      stream.on("data", () => undefined);
      stream.on("close", () => {
        if (!answered) tally.reset++;
        resolve();
      });
    }));
    // A Watch request is complete (one empty HealthCheckRequest, then end of stream); a bidi stream stays open.
    if (index % paths.length === 0) stream.end(EMPTY_GRPC_MESSAGE);
    else stream.write(EMPTY_GRPC_MESSAGE);
  }
  // Every stream is answered (a Watch then stays open) or refused, or the attacker gives up waiting.
  await Promise.race([Promise.all(settled), delay(ATTACK_WAIT_MS), new Promise((resolve) => leave.addEventListener("abort", resolve, { once: true }))]);
  return session;
}

/** What the bystander process reports. */
interface BystanderReport {
  latencies: number[];
  failed: number;
  slow: string[];
}

/** Starts bench/health-prober.ts in a process of its own, probing `url` every PROBE_INTERVAL_MS. */
function startBystander(url: string): { stop(): Promise<BystanderReport> } {
  const child = fork(new URL("./health-prober.ts", import.meta.url), ["--url", url, "--interval-ms", String(PROBE_INTERVAL_MS)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  const report = new Promise<BystanderReport>((resolve, reject) => {
    child.once("message", (message) => resolve(message as BystanderReport));
    child.once("exit", (code) => reject(new Error(`the health prober exited (code ${code}) without a report`)));
  });
  return {
    stop() {
      child.send("stop");
      return report;
    },
  };
}

/** An authenticated WebSocket client that stops reading, then sends `count` get_state requests with ids of `pingBytes`. */
async function floodWebSocket(url: string, count: number, pingBytes: number): Promise<{ socket: WebSocket; result: FloodResult["webSocket"] }> {
  const started = performance.now();
  const socket = new WebSocket(`${url.replace(/^http/, "ws")}/v1/embeddings/ws`, { headers: { "x-api-key": BENCH_KEY } });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  const result: FloodResult["webSocket"] = { sent: 0, elapsedMs: 0 };
  socket.on("error", () => undefined);
  socket.once("close", (code) => {
    result.closeCode = code;
  });
  // The underlying socket stops reading: the server's answers pile up on its side.
  (socket as unknown as { _socket: { pause(): void } })._socket.pause();
  const padding = "x".repeat(pingBytes);
  for (let index = 0; index < count && socket.readyState === WebSocket.OPEN; index++) {
    // The answer carries the request's id, so each request makes the server queue about pingBytes for a client that reads nothing.
    socket.send(JSON.stringify({ id: `${index}-${padding}`, type: "request", timestamp: new Date().toISOString(), payload: { action: "get_state" } }));
    result.sent++;
    // Let the kernel move bytes so the server reads (or refuses to read) as it would from a network peer.
    if (index % 8 === 7) await delay(5);
  }
  result.elapsedMs = performance.now() - started;
  return { socket, result };
}

/** Runs the flood against a fresh service child process and measures it. */
export async function runFlood(options: FloodOptions): Promise<FloodResult> {
  const { progress, ...plan } = options;
  const server = await startServerProcess(new URL("./service-server.ts", import.meta.url), { args: ["--api-key", BENCH_KEY], exposeGc: true, cpuProfileDir: plan.cpuProfileDir });
  const url = server.urls.http2;
  try {
    // A first health call and a moment of quiet, so the reading before includes a started service.
    const first = await fetch(`${url}/v1/health`);
    if (!first.ok) throw new Error(`the service answered health with ${first.status}`);
    await delay(1000);
    const before = await server.memory(true);
    progress(`flood: heap before ${(before.heapUsedBytes / 2 ** 20).toFixed(1)} MiB, RSS ${(before.rssBytes / 2 ** 20).toFixed(0)} MiB`);

    let peak = await server.memory(false);
    const flooding = new AbortController();
    const bystander = startBystander(url);
    const sampler = (async () => {
      while (!flooding.signal.aborted) {
        const memory = await server.memory(false);
        if (memory.rssBytes > peak.rssBytes) peak = memory;
        await delay(500);
      }
    })();

    const streams: FloodResult["streams"] = { answered: 0, reset: 0, statuses: {}, elapsedMs: 0 };
    const leave = new AbortController();
    const started = performance.now();
    const perConnection = Math.ceil(plan.streamOpens / plan.connections);
    const [sessions, webSocket] = await Promise.all([
      Promise.all(Array.from({ length: plan.connections }, () => floodConnection(url, perConnection, leave.signal, streams))),
      floodWebSocket(url, plan.webSocketPings, plan.pingBytes),
    ]);
    streams.elapsedMs = performance.now() - started;
    progress(`flood: ${streams.answered} streams answered, ${streams.reset} reset in ${(streams.elapsedMs / 1000).toFixed(1)} s; ` +
      `WebSocket ${webSocket.result.sent} pings sent, close code ${webSocket.result.closeCode ?? "none"}`);
    // The attackers hold what they have for a moment, then leave.
    await delay(2000);
    flooding.abort();
    const [probes] = await Promise.all([bystander.stop(), sampler]);
    if (probes.slow.length > 0) progress(`flood: health calls over 250 ms (time into the flood: latency): ${probes.slow.join(", ")}`);
    leave.abort();
    for (const session of sessions) session.destroy();
    webSocket.socket.terminate();
    await delay(plan.settleMs);
    const after = await server.memory(true);
    progress(`flood: heap after ${(after.heapUsedBytes / 2 ** 20).toFixed(1)} MiB, RSS ${(after.rssBytes / 2 ** 20).toFixed(0)} MiB`);
    return {
      options: plan,
      before,
      peak,
      after,
      streams,
      webSocket: webSocket.result,
      health: {
        probes: probes.latencies.length + probes.failed,
        failed: probes.failed,
        p50Ms: percentile(probes.latencies, 0.5),
        maxMs: probes.latencies.length ? Math.max(...probes.latencies) : Number.NaN,
      },
    };
  } finally {
    await server.stop();
  }
}

/** The flood's markdown section: what was sent, the bystander's health calls, memory before, at peak and after. */
export function formatFloodReport(result: FloodResult): string {
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  const heapGrowth = (result.after.heapUsedBytes - result.before.heapUsedBytes) / 2 ** 20;
  const statuses = Object.entries(result.streams.statuses).map(([status, count]) => `${status}: ${count}`).join(", ");
  return [
    "## Flood (API-key auth on; attackers without a key)",
    "",
    `${result.options.streamOpens} stream opens over ${result.options.connections} HTTP/2 connections (Watch and StreamEmbeddings alternately); ` +
      `one authenticated WebSocket client that stops reading sends ${result.options.webSocketPings} get_state requests with ids of ${result.options.pingBytes} bytes (each answer repeats the id).`,
    "",
    "| measure | value | target |",
    "|---|---|---|",
    `| streams answered / reset | ${result.streams.answered} / ${result.streams.reset} in ${(result.streams.elapsedMs / 1000).toFixed(1)} s (grpc-status ${statuses || "none"}) | |`,
    `| WebSocket pings sent before the server stopped reading or closed | ${result.webSocket.sent} (close code ${result.webSocket.closeCode ?? "none while flooding"}) | |`,
    `| health calls during the flood (fresh connection each) | ${result.health.probes}, ${result.health.failed} failed; p50 ${result.health.p50Ms.toFixed(1)} ms, max ${result.health.maxMs.toFixed(1)} ms | max < 1000 ms, 0 failed |`,
    `| server heap before / after (forced GC, ${result.options.settleMs / 1000} s after the clients left) | ${mib(result.before.heapUsedBytes)} / ${mib(result.after.heapUsedBytes)} MiB (${heapGrowth >= 0 ? "+" : ""}${heapGrowth.toFixed(1)} MiB) | within 50 MB |`,
    `| server RSS before / peak / after | ${mib(result.before.rssBytes)} / ${mib(result.peak.rssBytes)} / ${mib(result.after.rssBytes)} MiB | |`,
    "",
  ].join("\n");
}
