import { createEmbedRequest } from "../domain/embed-request.js";
import { EmbedderError } from "../domain/errors.js";
import { ChunkTooSmallError } from "./chunk-document.js";
import { chunkJobDocuments } from "./chunk-job-documents.js";
import { embedJobChunks } from "./embed-job-chunks.js";
import { finishJob } from "./finish-job.js";
import type { StoredJob } from "./job-store.js";
import { JobStoreError } from "./job-store-error.js";
import type { JobDeps } from "./job-service-deps.js";
import { planChunking } from "./plan-chunking.js";
import { withRetry } from "./with-retry.js";

/** What a job that failed on the store tells its client (the log has the file and the SQLite error). */
const STORE_FAILURES: { readonly [K in JobStoreError["kind"]]: { code: string; message: string } } = {
  full: { code: "STORE_FULL", message: "the job store is full; free disk space or wait for finished jobs to expire, then create the job again" },
  corrupt: { code: "STORE_CORRUPT", message: "the job store is corrupt; the operator must restore it or move it aside" },
  locked: { code: "STORE_IO", message: "the job store is in use by another process" },
  io: { code: "STORE_IO", message: "the job store cannot be read or written" },
}

/**
 * Runs one job to its end, or until `signal` aborts (the job then stays
 * `running` in the store and resumes at the next start): loads the target
 * model (retried while it is not ready), settles the chunking (planChunking)
 * and the dimensions and marks the job running, cuts its documents
 * (chunkJobDocuments), embeds its chunks (embedJobChunks) in groups of at
 * most one batch (the batcher's size and token budget), and marks it
 * completed. A failure marks it failed with a code the client can act on (a
 * store failure as STORE_FAILURES says), except a stop (`signal` aborted, or
 * the pipeline SHUTTING_DOWN), which leaves the job to resume.
 */
export async function runJob(deps: JobDeps, job: StoredJob, signal: AbortSignal): Promise<void> {
  const { store, logger, now } = deps;
  try {
    const choice = await withRetry(() => deps.registry.resolve(job.options.model), signal, job.id, logger);
    try {
      const plan = planChunking(choice.model, job.options, job.requestedChunking);
      // The size the pipeline will answer, under the policy it will apply (the job's, else the server's).
      const { run } = await deps.embedder.check(createEmbedRequest({ ...job.options, requestId: job.id, texts: [], priority: "background" }));
      store.markRunning(job.id, { modelId: choice.model.manifest.id, dimensions: run.dimensions, chunking: plan.chunking, now: now() });
      if (store.getJob(job.id)?.status !== "running") return;
      if (job.status === "running" || job.resumes > 0) logger.info({ job: job.id, resumes: job.resumes }, "document job resumed");
      else logger.info({ job: job.id, documents: job.documentCount }, "document job started");
      if (!(await chunkJobDocuments(deps, job.id, plan, signal))) return;
      const groupSize = Math.max(1, Math.min(deps.batching.maxBatchSize, deps.batching.maxQueue, Math.floor(deps.batching.tokenBudget / plan.maxEmbeddedTokens)));
      if (!(await embedJobChunks(deps, job, groupSize, signal))) return;
      finishJob(deps, job.id, "completed");
      logger.info({ job: job.id }, "document job completed");
    } finally {
      choice.release?.();
    }
  } catch (reason) {
    if (signal.aborted) return;
    const error = reason instanceof ChunkTooSmallError
      ? new EmbedderError("INVALID_ARGUMENT", reason.message, { details: { field: "chunking.chunk_size", value: reason.chunkSize } })
      : reason;
    if (error instanceof EmbedderError && error.reason === "SHUTTING_DOWN") return;
    const failure = error instanceof JobStoreError ? STORE_FAILURES[error.kind] : { code: EmbedderError.from(error).reason, message: EmbedderError.from(error).message };
    logger.error({ err: reason, job: job.id, code: failure.code }, "document job failed");
    finishJob(deps, job.id, "failed", failure);
  }
}
