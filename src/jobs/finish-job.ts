import type { JobStatus } from "../domain/jobs.js";
import type { JobDeps } from "./job-service-deps.js";

/**
 * Moves a job to a final status (once), with its retention, and tells
 * `onJobFinished`. A store failure is logged, not thrown: the job stays
 * queued or running in the store and is resumed at the next start.
 */
export function finishJob(deps: Pick<JobDeps, "store" | "logger" | "limits" | "onJobFinished" | "now">, jobId: string, status: JobStatus, error?: { code: string; message: string }): void {
  const { store, logger, limits, now } = deps;
  const at = now();
  try {
    if (store.finishJob(jobId, { status, now: at, expiresAt: at + limits.retentionMs, error })) deps.onJobFinished?.(status);
  } catch (reason) {
    logger.error({ err: reason, job: jobId, status }, "could not record a document job's final status; it will be resumed at the next start");
  }
}
