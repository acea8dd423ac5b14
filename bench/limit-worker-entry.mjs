// worker_threads load plain JavaScript: this entry registers tsx so the
// TypeScript limit worker runs without a build step (as src/inference/worker-entry.mjs does).
import { register } from "tsx/esm/api";

register();
await import("./limit-worker.ts");
