import { spawn } from "node:child_process";
import type { Command } from "commander";
import { PACKAGE_ROOT } from "../../package-root.js";

/**
 * `sutra bench [options]`: runs the project's benchmark (`npm run bench`,
 * bench/run.ts) with the given options, passed through as they are
 * (`--quick`, `--phases`, `--transports`, ... see bench/run.ts). The report
 * is markdown on stdout, progress on stderr. Needs the source checkout (bench/
 * is not part of the SDK).
 */
export function addBenchCommand(program: Command): Command {
  return program
    .command("bench")
    .description("run the benchmarks (npm run bench): markdown report on stdout; options pass through, e.g. --quick --phases limits,service")
    .argument("[bench-options...]", "bench/run.ts options: --quick, --phases, --transports, --workloads, --concurrency, --runs, --duration, --json FILE")
    .allowUnknownOption()
    .helpOption("-h, --help", "show this help (bench/run.ts documents every option at its top)")
    .action(async (args: string[]) => {
      const child = spawn(process.execPath, ["--import", "tsx", "bench/run.ts", ...args], { cwd: PACKAGE_ROOT, stdio: "inherit" });
      const forward = (signal: NodeJS.Signals): void => {
        child.kill(signal);
      };
      process.on("SIGINT", forward);
      process.on("SIGTERM", forward);
      process.exitCode = await new Promise<number>((resolveExit) => child.once("exit", (code, signal) => resolveExit(code ?? (signal ? 128 + 15 : 1))));
    });
}
