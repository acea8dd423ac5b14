import type { JobSnapshot } from "../domain/jobs.js";
import type { StoredJob } from "./job-store.js";

/**
 * What a client is told of a stored job: its counts and times as stored, the
 * progress (completed over total chunks once every document is cut, 1 when
 * completed), and the chunking in force (the requested one until the job
 * starts and settles it).
 */
export function toJobSnapshot(job: StoredJob): JobSnapshot {
  const chunked = job.documentsChunked === job.documentCount;
  return {
    id: job.id,
    status: job.status,
    progress: job.status === "completed" ? 1 : chunked && job.totalChunks > 0 ? job.completedChunks / job.totalChunks : 0,
    documentCount: job.documentCount,
    documentsChunked: job.documentsChunked,
    totalChunks: job.totalChunks,
    completedChunks: job.completedChunks,
    dispatchedChunks: job.dispatchedChunks,
    totalBytes: job.totalBytes,
    promptTokens: job.promptTokens,
    model: job.options.model,
    modelId: job.modelId,
    dimensions: job.dimensions,
    chunking: job.chunking.chunkSize > 0 ? job.chunking : job.requestedChunking,
    createdAt: job.createdAt,
    ...(job.startedAt === undefined ? {} : { startedAt: job.startedAt }),
    updatedAt: job.updatedAt,
    ...(job.finishedAt === undefined ? {} : { finishedAt: job.finishedAt }),
    ...(job.expiresAt === undefined ? {} : { expiresAt: job.expiresAt }),
    ...(job.error === undefined ? {} : { error: job.error }),
    resumes: job.resumes,
  };
}
