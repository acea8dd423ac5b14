import { randomUUID } from "node:crypto";
import { BroadcastChannel } from "node:worker_threads";
import { Piscina } from "piscina";
import { EmbedderError } from "../domain/errors.js";
import type { CrashTask, InferenceResult, InferenceTask } from "./task.js";

/** Options of the inference pool. */
export interface InferencePoolOptions {
  /** Worker threads, each holding its own ONNX sessions. */
  threads: number;
  /** Told when a worker died unexpectedly (piscina starts a replacement). */
  onWorkerLost?: (error: Error) => void;
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
  /** Test hook: one worker thread exits between inference runs, as a crashed worker would. */
  terminateOneWorker(): Promise<void>;
  close(): Promise<void>;
}

/** Creates the piscina pool; threads start eagerly so the first request does not pay for them. */
export function createInferencePool(options: InferencePoolOptions): InferencePool {
  const sessionChannelName = `sutra-sessions-${randomUUID()}`;
  const sessionChannel = new BroadcastChannel(sessionChannelName);
  sessionChannel.unref();
  const pool = new Piscina<InferenceTask | CrashTask, InferenceResult>({
    workerData: { sessionChannel: sessionChannelName },
    filename: new URL("./worker-entry.mjs", import.meta.url).href,
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
    async terminateOneWorker() {
      await pool.run({ crash: true }).catch(() => undefined);
    },
    async close() {
      closing = true;
      sessionChannel.close();
      await pool.destroy();
    },
  };
}
