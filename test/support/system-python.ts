import { execFileSync } from "node:child_process";

/** The system Python with Debian's packages (the `python3` on PATH may be another build without them). */
export const SYSTEM_PYTHON = "/usr/bin/python3";

/** Whether the system Python can import every module of `modules` (e.g. "grpc, google.protobuf"), for tests that skip by name without them. */
export function pythonCanImport(modules: string): boolean {
  try {
    execFileSync(SYSTEM_PYTHON, ["-c", `import ${modules}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
