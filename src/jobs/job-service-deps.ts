import type { JobStatus } from "../domain/jobs.js";
import type { Embedder } from "../domain/types.js";
import type { ModelRegistry } from "../models/registry.js";
import type { Logger } from "../observability/logger.js";
import type { JobStore } from "./job-store.js";

/** Limits on jobs, per job and per principal (docs/JOBS.md, "Configuration"). */
export interface JobLimits {
  /** Most documents in one job. */
  maxDocuments: number;
  /** Most bytes of document text and metadata (UTF-8) in one job. */
  maxBytes: number;
  /** Most queued and running jobs of one principal. */
  maxActivePerPrincipal: number;
  /** How long a finished job and its results are kept, in milliseconds. */
  retentionMs: number;
}

/** What the job service needs. */
export interface JobServiceDeps {
  store: JobStore;
  /** The pipeline itself (not the admitted one: jobs have their own limits); jobs call it at `background` priority. */
  embedder: Embedder;
  registry: Pick<ModelRegistry, "resolve">;
  logger: Logger;
  limits: JobLimits;
  /** The batcher's limits: a job hands inference one batch's worth of chunks at a time, never more than the queue bound. */
  batching: { maxBatchSize: number; tokenBudget: number; maxQueue: number };
  /** Jobs run at once (default 1); others wait queued, oldest first. */
  concurrency?: number;
  /** How often expired jobs are deleted, in ms (default: a tenth of the retention, between 1 s and 10 min). */
  sweepIntervalMs?: number;
  /** Told of chunks handed to inference (once their batch settled) and of jobs reaching a final status (metrics). */
  onChunksEmbedded?: (count: number) => void;
  onJobFinished?: (status: JobStatus) => void;
  now?: () => number;
}

/**
 * What the parts of the job service share: its deps with the clock settled
 * (`now`, Date.now by default), so every part reads the same time.
 */
export type JobDeps = JobServiceDeps & { now: () => number };
