import type { InferencePool } from "../../src/inference/pool.js";
import type { InferenceTask } from "../../src/inference/task.js";

/**
 * File URL of a worker module (pass it as the pool's `workerModule`) that is the real inference
 * worker plus a crash hook, so the service's code has no test-only path.
 */
export const CRASHING_WORKER_MODULE = new URL("./crashing-worker-entry.mjs", import.meta.url).href;

/**
 * Makes one worker thread of a pool running CRASHING_WORKER_MODULE exit between inference runs, as a
 * crashed worker would (a thread terminated from outside while ONNX Runtime runs would abort the
 * process). Resolves once the thread has exited; piscina then starts a replacement.
 */
export async function crashOneWorker(pool: InferencePool): Promise<void> {
  await pool.run({ crash: true } as unknown as InferenceTask).catch(() => undefined);
}
