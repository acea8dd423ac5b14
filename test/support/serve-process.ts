import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The CLI's entry point; it runs the compiled JavaScript in dist/ (`npm test` compiles first). */
const SUTRA = fileURLToPath(new URL("../../bin/sutra.mjs", import.meta.url));

/** One JSON log line of `sutra serve`. */
export interface LogLine {
  msg: string;
  time: number;
  address?: { port: number };
  [key: string]: unknown;
}

/** `sutra serve` running in a child process of its own. */
export interface ServeProcess {
  child: ChildProcess;
  /** Every JSON log line so far, in order. */
  lines: LogLine[];
  /** Resolves with the first log line whose `msg` is `message`; rejects after `timeoutMs` (default 60 s). */
  waitFor(message: string, timeoutMs?: number): Promise<LogLine>;
  /** Resolves once the process has exited: `at` is performance.now() then, `code` its exit code. */
  exited: Promise<{ at: number; code: number | null }>;
}

/**
 * Starts `sutra serve` on 127.0.0.1 port 0 from the compiled build
 * (`node bin/sutra.mjs`, as an operator or the image starts it, without a
 * wrapper such as npx that relays signals), with JSON log lines at level info
 * and an empty models folder (the built default model serves). The child
 * leads its own process group, so a test signals it as a whole with
 * {@link signalGroup}, as a terminal, systemd or a container runtime with an
 * init process does.
 */
export function startServeProcess(extraArgs: readonly string[] = []): ServeProcess {
  const child = spawn(process.execPath, [SUTRA, "serve", "--port", "0", "--log-level", "info", ...extraArgs], {
    cwd: process.cwd(),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
    env: { ...process.env, SUTRA_MODELS_DIR: "/nonexistent-models-dir" },
  });
  const lines: LogLine[] = [];
  const waiters: Array<() => void> = [];
  let buffered = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    buffered += chunk.toString("utf8");
    const parts = buffered.split("\n");
    buffered = parts.pop() ?? "";
    for (const part of parts) {
      if (part.trim() === "") continue;
      try {
        lines.push(JSON.parse(part) as LogLine);
      } catch {
        continue;
      }
      for (const waiter of waiters.splice(0)) waiter();
    }
  });
  child.stderr!.on("data", (chunk: Buffer) => process.stderr.write(`[server stderr] ${chunk}`));
  // "close" comes once the process has exited and its stdio has closed.
  const exited = new Promise<{ at: number; code: number | null }>((resolve) => {
    child.once("close", (code) => resolve({ at: performance.now(), code }));
  });
  const waitFor = async (message: string, timeoutMs = 60_000): Promise<LogLine> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = lines.find((line) => line.msg === message);
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`no "${message}" log line within ${timeoutMs} ms; saw ${lines.map((line) => `${line.msg}@${line.time % 100000}`).join(", ")} (now ${Date.now() % 100000})`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  };
  return { child, lines, waitFor, exited };
}

/** Sends a signal to the server's whole process group; a group already gone is fine. */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}
