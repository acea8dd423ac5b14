import { fork, type ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import type { StreamStats } from "../../src/streaming/create-stream-sessions.js";

/** What the service child (test/support/stream-server-child.ts) reports about itself. */
export interface ChildServiceStats {
  /** Process memory in bytes, after a garbage collection. */
  rss: number;
  heapUsed: number;
  external: number;
  /** The stream registry's counters. */
  streams: StreamStats;
  /** TCP connections the server holds open. */
  connections: number;
}

/** The real service in a process of its own, seen from a test. */
export interface ChildService {
  port: number;
  /** The server process's memory (after a garbage collection) and counters. */
  stats(): Promise<ChildServiceStats>;
  /** Drains the service and waits for the process to exit (killed after 15 s). */
  stop(): Promise<void>;
}

/**
 * Starts the real service in its own process (with `--expose-gc`), so a test
 * can measure the server's memory apart from its clients; `env` is added to
 * the `SUTRA_*` settings the service reads as `sutra serve` does.
 */
export async function startChildService(env: Record<string, string> = {}): Promise<ChildService> {
  const child: ChildProcess = fork(new URL("./stream-server-child.ts", import.meta.url), [], {
    execArgv: ["--import", "tsx", "--expose-gc"],
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  const nextMessage = <T>(type: string) =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (message: { type: string }) => {
        if (message.type !== type) return;
        child.off("message", onMessage);
        child.off("exit", reject);
        resolve(message as T);
      };
      child.on("message", onMessage);
      child.once("exit", reject);
    });
  const { port } = await nextMessage<{ port: number }>("ready");
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    port,
    async stats() {
      const answer = nextMessage<ChildServiceStats>("stats");
      child.send({ type: "stats" });
      return answer;
    },
    async stop() {
      child.send({ type: "stop" });
      await Promise.race([exited, sleep(15_000).then(() => child.kill("SIGKILL"))]);
    },
  };
}
