import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/**
 * Vitest global setup: compiles src/ to dist/ once before any test file runs,
 * since the end-to-end tests start the server and the CLI from the compiled
 * output; so `npx vitest` alone never tests a stale dist/.
 */
export default function compileDist(): void {
  execFileSync(process.execPath, [fileURLToPath(new URL("../../scripts/build-dist.mjs", import.meta.url))], { stdio: "inherit" });
}
