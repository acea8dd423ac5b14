import { randomUUID } from "node:crypto";
import { BroadcastChannel } from "node:worker_threads";
import { Piscina } from "piscina";
import { EmbedderError } from "../domain/errors.js";
import type { InferenceResult, InferenceTask } from "./task.js";

/** Options of the inference pool. */
export interface InferencePoolOptions {
  /** Worker threads, each holding its own ONNX sessions. */
  threads: number;
  /** Told when a worker died unexpectedly (piscina starts a replacement). */
  onWorkerLost?: (error: Error) => void;
  /**
   * File URL of the module each worker thread loads, whose default export runs an
   * `InferenceTask`; default the built-in ONNX Runtime worker. Another module can wrap that
   * worker, e.g. a test's that makes a thread exit as a crashed worker would.
   */
  workerModule?: string;
}

/** Worker counts for health. */
export interface WorkerStatus {
  ready: number;
  total: number;
  /** Workers replaced since start. */
  replaced: number;
  /** When the last worker was lost (ms since epoch), 0 if never. */
  lastLostAt: number;
}

/** The worker-thread pool that runs inference batches. */
export interface InferencePool {
  /**
   * Runs one batch on a worker. Rejects with CANCELLED when `signal` aborts
   * before the batch starts, and with WORKER_FAILED when the worker throws or
   * dies (piscina starts a replacement; nothing waits forever).
   */
  run(task: InferenceTask, signal?: AbortSignal): Promise<InferenceResult>;
  workers(): WorkerStatus;
  /**
   * Tells every worker to close its sessions of model files under `dir` (the model was
   * unloaded); a session busy with a batch closes when the batch ends.
   */
  releaseModel(dir: string): void;
  close(): Promise<void>;
}

/**
 * The built-in worker as piscina loads it, with Node's own loader: compiled (dist/), `worker.js`
 * itself; run from the TypeScript sources (vitest, tsx), `worker-entry.mjs`, which registers tsx
 * first because that loader cannot read TypeScript.
 */
const BUILTIN_WORKER_MODULE = new URL(import.meta.url.endsWith(".ts") ? "./worker-entry.mjs" : "./worker.js", import.meta.url).href;

/** Creates the piscina pool; threads start eagerly so the first request does not pay for them. */
export function createInferencePool(options: InferencePoolOptions): InferencePool {
  const sessionChannelName = `sutra-sessions-${randomUUID()}`;
  const sessionChannel = new BroadcastChannel(sessionChannelName);
  sessionChannel.unref();
  const pool = new Piscina<InferenceTask, InferenceResult>({
    workerData: { sessionChannel: sessionChannelName },
    filename: options.workerModule ?? BUILTIN_WORKER_MODULE,
    minThreads: options.threads,
    maxThreads: options.threads,
    idleTimeout: Number.POSITIVE_INFINITY,
    concurrentTasksPerWorker: 1,
  });
  let closing = false;
  let replaced = 0;
  let lastLostAt = 0;
  const lost = (error: Error) => {
    if (closing) return;
    replaced++;
    lastLostAt = Date.now();
    options.onWorkerLost?.(error);
  };
  pool.on("workerDestroy", () => lost(new Error("worker thread exited")));
  pool.on("error", (error: Error) => lost(error));
  return {
    async run(task, signal) {
      try {
        return await pool.run(task, signal ? { signal } : {});
      } catch (error) {
        if (signal?.aborted || (error as Error).name === "AbortError") {
          throw new EmbedderError("CANCELLED", "the request was cancelled", { cause: error });
        }
        throw new EmbedderError("WORKER_FAILED", "an inference worker failed; retry the request", { cause: error, retryAfterMs: 100 });
      }
    },
    workers: () => ({ ready: pool.threads.length, total: options.threads, replaced, lastLostAt }),
    releaseModel(dir) {
      sessionChannel.postMessage({ release: dir });
    },
    async close() {
      closing = true;
      sessionChannel.close();
      await pool.destroy();
    },
  };
}
