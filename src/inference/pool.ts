import { Piscina } from "piscina";
import { EmbedderError } from "../domain/errors.js";
import type { InferenceResult, InferenceTask } from "./task.js";

/** Options of the inference pool. */
export interface InferencePoolOptions {
  /** Worker threads, each holding its own ONNX sessions. */
  threads: number;
}

/** The worker-thread pool that runs inference batches. */
export interface InferencePool {
  /**
   * Runs one batch on a worker. Rejects with CANCELLED when `signal` aborts
   * before the batch starts, and with WORKER_FAILED when the worker throws or dies
   * (piscina replaces a dead worker; nothing waits forever).
   */
  run(task: InferenceTask, signal?: AbortSignal): Promise<InferenceResult>;
  /** Threads alive now and configured. */
  workers(): { ready: number; total: number };
  close(): Promise<void>;
}

/** Creates the piscina pool; threads start eagerly so the first request does not pay for them. */
export function createInferencePool(options: InferencePoolOptions): InferencePool {
  const pool = new Piscina<InferenceTask, InferenceResult>({
    filename: new URL("./worker-entry.mjs", import.meta.url).href,
    minThreads: options.threads,
    maxThreads: options.threads,
    idleTimeout: Number.POSITIVE_INFINITY,
    concurrentTasksPerWorker: 1,
  });
  return {
    async run(task, signal) {
      try {
        return await pool.run(task, signal ? { signal } : {});
      } catch (error) {
        if (signal?.aborted || (error as Error).name === "AbortError") {
          throw new EmbedderError("CANCELLED", "the request was cancelled", { cause: error });
        }
        throw new EmbedderError("WORKER_FAILED", "an inference worker failed", { cause: error });
      }
    },
    workers: () => ({ ready: pool.threads.length, total: options.threads }),
    close: () => pool.destroy(),
  };
}
