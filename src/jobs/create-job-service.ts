import { EmbedderError } from "../domain/errors.js";
import { FINISHED_JOB_STATUSES } from "../domain/jobs.js";
import type { JobPage, JobService } from "../domain/jobs.js";
import { admitJob } from "./admit-job.js";
import { createJobScheduler } from "./create-job-scheduler.js";
import { createRetentionSweeper } from "./create-retention-sweeper.js";
import { finishJob } from "./finish-job.js";
import { fromStore } from "./from-store.js";
import type { JobDeps, JobServiceDeps } from "./job-service-deps.js";
import { readJobResults } from "./read-job-results.js";
import { toJobSnapshot } from "./to-job-snapshot.js";
import { ownerOf, seesAll, visibleJob } from "./visible-job.js";

export type { JobLimits, JobServiceDeps } from "./job-service-deps.js";

/** The job service with its lifecycle. */
export interface JobServiceHandle extends JobService {
  /** Requeues jobs a previous process left running, deletes expired jobs, and starts running queued jobs. */
  start(): void;
  /**
   * Stops running jobs (a batch in flight is dropped) and waits for them to
   * let go; they stay `running` in the store, so the next start resumes them
   * from their last committed chunk.
   */
  stop(): Promise<void>;
  /** Closes the store (after stop). */
  close(): void;
}

/**
 * Creates the document-job service (docs/JOBS.md). A job is validated and
 * stored at creation (documents, options, chunking), then run in the
 * background: its documents are cut into chunks (chunkDocument, sized by
 * planChunking on the target model's tokenizer) and the chunks are stored;
 * then, one batch of chunks at a time in document order, the count of chunks
 * handed to inference is committed (taken back when the pipeline refuses the
 * batch before running it), the chunks are embedded through the one
 * pipeline at `background` priority (so they yield to online requests), and
 * their embeddings and the job's counts are committed in one transaction. A
 * process killed at any point resumes a job from its last committed chunk;
 * a chunk's embedding is stored at most once, so results hold each chunk
 * exactly once and the work lost to a kill is at most the batch in flight.
 * Results are served only as stored: a row damaged on disk ends the results
 * with DATA_DAMAGED at that row, after the good rows before it.
 */
export function createJobService(deps: JobServiceDeps): JobServiceHandle {
  const jobDeps: JobDeps = { ...deps, now: deps.now ?? Date.now };
  const { store, logger } = jobDeps;
  const scheduler = createJobScheduler(jobDeps, createRetentionSweeper(jobDeps));

  return {
    async create(input) {
      if (scheduler.isStopped()) throw new EmbedderError("SHUTTING_DOWN", "the server is shutting down", { retryAfterMs: 1000 });
      const job = await admitJob(jobDeps, input);
      queueMicrotask(scheduler.kick);
      return toJobSnapshot(job);
    },
    get: (jobId, principal) => toJobSnapshot(visibleJob(store, jobId, principal)),
    list({ status, limit, offset }, principal): JobPage {
      const owner = seesAll(principal) ? undefined : ownerOf(principal);
      const { jobs, total } = fromStore(() => store.listJobs({ owner, status, limit, offset }));
      return { jobs: jobs.map(toJobSnapshot), total, limit, offset, hasMore: offset + jobs.length < total };
    },
    cancel(jobId, principal) {
      const job = visibleJob(store, jobId, principal);
      if (!FINISHED_JOB_STATUSES.includes(job.status)) {
        finishJob(jobDeps, jobId, "cancelled");
        scheduler.abort(jobId);
        logger.info({ job: jobId }, "document job cancelled");
      }
      return toJobSnapshot(visibleJob(store, jobId, principal));
    },
    results: (jobId, { offset }, principal) => readJobResults(jobDeps, jobId, offset, principal),
    start: scheduler.start,
    stop: scheduler.stop,
    close() {
      store.close();
    },
  };
}
