import { setTimeout as sleep } from "node:timers/promises";
import { EmbedderError } from "../domain/errors.js";
import type { Logger } from "../observability/logger.js";

/** Failures worth retrying a group for, and how often. */
const TRANSIENT = new Set(["OVERLOADED", "WORKER_FAILED", "MODEL_NOT_READY", "UPSTREAM_UNAVAILABLE"]);
const RETRIES = 5;
const RETRY_BASE_MS = 500;

/**
 * Runs a step of job `jobId` (loading the model, embedding a batch),
 * retrying transient failures (TRANSIENT) with exponential backoff, or the
 * wait the failure asks for if longer, up to RETRIES times; a job outlives a
 * model load or an overloaded pipeline instead of failing. Throws the last
 * failure, a permanent one at once, and stops retrying when `signal` aborts.
 */
export async function withRetry<T>(work: () => Promise<T>, signal: AbortSignal, jobId: string, logger: Logger): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (reason) {
      const error = EmbedderError.from(reason);
      if (signal.aborted || !TRANSIENT.has(error.reason) || attempt >= RETRIES) throw reason;
      const waitMs = Math.max(error.retryAfterMs ?? 0, RETRY_BASE_MS * 2 ** attempt);
      logger.warn({ job: jobId, reason: error.reason, waitMs }, "document job step failed; retrying");
      await sleep(waitMs, undefined, { signal }).catch(() => undefined);
    }
  }
}
