/**
 * The servers under test run in child processes, so the load-generating client
 * never shares the server's event loop or CPU accounting. Parent and child talk
 * over the Node IPC channel (never stdout, which the server may log to):
 *
 * - child -> parent `{type: "ready", urls}` once it listens;
 * - parent -> child `{type: "phase-start"}`: the child resets its event-loop delay
 *   histogram and answers `{type: "phase-started"}`;
 * - parent -> child `{type: "phase-end"}`: answered with the main thread's
 *   event-loop delay, utilisation and CPU time since the phase started (`{type: "phase-stats", ...}`);
 * - parent -> child `{type: "memory", collect}`: answered with the process's heap
 *   and RSS (`{type: "memory-usage", ...}`), after a full garbage collection when
 *   `collect` is true and the child runs with `--expose-gc`;
 * - parent -> child `{type: "stop"}`: the child closes its servers and exits
 *   (a normal exit, so `--cpu-prof` writes its profile).
 */
import { fork, type ChildProcess } from "node:child_process";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";

/** Base URLs a bench server listens on: one speaking HTTP/2 cleartext, one HTTP/1.1 (the same for the real service). */
export interface ServerUrls {
  http2: string;
  http1: string;
}

/**
 * What the server process measured about itself during one phase. Event-loop
 * delay of its main thread comes from `perf_hooks.monitorEventLoopDelay`
 * sampling every {@link LOOP_RESOLUTION_MS} ms (the histogram's values include
 * up to that interval). CPU time is the whole process's (every thread:
 * transport, tokenizer, inference workers); on a shared machine it is steadier
 * than wall-clock throughput.
 */
export interface ServerPhaseStats {
  loopP50Ms: number;
  loopP99Ms: number;
  loopMaxMs: number;
  /** Share of wall time the main thread's event loop was busy (`performance.eventLoopUtilization`), 0..1. */
  mainThreadUtilization: number;
  /** User + system CPU time of the whole server process. */
  cpuMs: number;
  /** Increase of each counter the server reports (see {@link serveBenchProtocol}); empty for servers without any. */
  counters: Record<string, number>;
}

/**
 * Sampling interval of the event-loop delay histogram: fine enough for a 20 ms
 * target, coarse enough to cost about 2% of a core (1 ms costs about 5%).
 */
export const LOOP_RESOLUTION_MS = 2;

/** A server process's memory, in bytes. */
export interface ServerMemory {
  heapUsedBytes: number;
  rssBytes: number;
  /** True when a full garbage collection ran just before the reading. */
  collected: boolean;
}

/** A server child process, seen from the bench. */
export interface ServerProcess {
  urls: ServerUrls;
  /** Resets the server's event-loop delay histogram. */
  beginPhase(): Promise<void>;
  /** The server's measurements since the last `beginPhase`. */
  endPhase(): Promise<ServerPhaseStats>;
  /** The server's heap and RSS now; `collect` runs a full garbage collection first (needs `exposeGc`). */
  memory(collect: boolean): Promise<ServerMemory>;
  /** Asks the server to close and waits for the process to exit (killed after 15 s). */
  stop(): Promise<void>;
}

type ParentMessage = { type: "phase-start" } | { type: "phase-end" } | { type: "memory"; collect: boolean } | { type: "stop" };
type ChildMessage =
  | { type: "ready"; urls: ServerUrls }
  | { type: "phase-started" }
  | ({ type: "phase-stats" } & ServerPhaseStats)
  | ({ type: "memory-usage" } & ServerMemory);

/** Options of a server child process. */
export interface ServerProcessOptions {
  /** Arguments passed to the script. */
  args?: string[];
  /** When set, the child runs with `--cpu-prof` and writes its profile into this folder at exit. */
  cpuProfileDir?: string;
  /** Runs the child with `--expose-gc`, so {@link ServerProcess.memory} can collect before reading. */
  exposeGc?: boolean;
  /** Environment variables added to this process's for the child (e.g. `sutra serve` settings). */
  env?: Record<string, string>;
}

function nextMessage<Type extends ChildMessage["type"]>(child: ChildProcess, type: Type): Promise<Extract<ChildMessage, { type: Type }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: ChildMessage) => {
      if (message.type !== type) return;
      cleanup();
      resolve(message as Extract<ChildMessage, { type: Type }>);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`bench server exited (code ${code}) while the bench waited for "${type}"`));
    };
    const cleanup = () => {
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.on("exit", onExit);
  });
}

/**
 * Starts `script` (a TypeScript module that calls {@link serveBenchProtocol}) in
 * a child Node process through tsx and resolves once it listens. Its stdout is
 * discarded and its stderr shown.
 */
export async function startServerProcess(script: URL, options: ServerProcessOptions = {}): Promise<ServerProcess> {
  const profiling = options.cpuProfileDir ? ["--cpu-prof", "--cpu-prof-dir", options.cpuProfileDir] : [];
  const child = fork(script, options.args ?? [], {
    execArgv: [...profiling, ...(options.exposeGc ? ["--expose-gc"] : []), "--import", "tsx"],
    stdio: ["ignore", "ignore", "inherit", "ipc"],
    env: { ...process.env, ...options.env },
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const send = (message: ParentMessage) => child.send(message);
  const { urls } = await nextMessage(child, "ready");
  return {
    urls,
    async beginPhase() {
      const started = nextMessage(child, "phase-started");
      send({ type: "phase-start" });
      await started;
    },
    async endPhase() {
      const stats = nextMessage(child, "phase-stats");
      send({ type: "phase-end" });
      const { loopP50Ms, loopP99Ms, loopMaxMs, mainThreadUtilization, cpuMs, counters } = await stats;
      return { loopP50Ms, loopP99Ms, loopMaxMs, mainThreadUtilization, cpuMs, counters };
    },
    async memory(collect) {
      const usage = nextMessage(child, "memory-usage");
      send({ type: "memory", collect });
      const { heapUsedBytes, rssBytes, collected } = await usage;
      return { heapUsedBytes, rssBytes, collected };
    },
    async stop() {
      if (child.exitCode !== null) return;
      send({ type: "stop" });
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * The child's side: announces `urls`, measures each phase (event-loop delay
 * histogram and utilisation of this main thread, process CPU time, and the
 * increase of whatever `readCounters` returns), and on "stop" awaits `stop` and
 * exits. The histogram samples only during phases, so an idle server between
 * phases costs nothing while other measurements run.
 */
export function serveBenchProtocol(
  urls: ServerUrls,
  stop: () => Promise<void>,
  readCounters: () => Promise<Record<string, number>> = async () => ({}),
): void {
  if (!process.send) throw new Error("a bench server must be started by bench/server-process.ts (no IPC channel)");
  const send = (message: ChildMessage) => process.send?.(message);
  const histogram = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  const toMs = (nanoseconds: number) => nanoseconds / 1e6;
  let cpuAtStart = process.cpuUsage();
  let utilizationAtStart = performance.eventLoopUtilization();
  let countersAtStart: Record<string, number> = {};
  process.on("message", async (message: ParentMessage) => {
    if (message.type === "phase-start") {
      countersAtStart = await readCounters();
      histogram.reset();
      histogram.enable();
      cpuAtStart = process.cpuUsage();
      utilizationAtStart = performance.eventLoopUtilization();
      send({ type: "phase-started" });
    } else if (message.type === "phase-end") {
      histogram.disable();
      const cpu = process.cpuUsage(cpuAtStart);
      const utilization = performance.eventLoopUtilization(utilizationAtStart).utilization;
      const counters = await readCounters();
      for (const [name, value] of Object.entries(counters)) counters[name] = value - (countersAtStart[name] ?? 0);
      send({
        type: "phase-stats",
        loopP50Ms: toMs(histogram.percentile(50)),
        loopP99Ms: toMs(histogram.percentile(99)),
        loopMaxMs: toMs(histogram.max),
        mainThreadUtilization: utilization,
        cpuMs: (cpu.user + cpu.system) / 1000,
        counters,
      });
    } else if (message.type === "memory") {
      const collect = message.collect && typeof globalThis.gc === "function";
      if (collect) {
        globalThis.gc?.();
        // A second pass after the event loop turns frees what finalizers of the first released.
        await new Promise((resolve) => setImmediate(resolve));
        globalThis.gc?.();
      }
      const usage = process.memoryUsage();
      send({ type: "memory-usage", heapUsedBytes: usage.heapUsed, rssBytes: usage.rss, collected: collect });
    } else if (message.type === "stop") {
      histogram.disable();
      stop().then(
        () => process.exit(0),
        (error: unknown) => {
          console.error("bench server did not stop cleanly:", error);
          process.exit(1);
        },
      );
    }
  });
  process.on("disconnect", () => process.exit(0));
  send({ type: "ready", urls });
}
