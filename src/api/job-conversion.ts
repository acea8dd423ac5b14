import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { EmbedderError } from "../domain/errors.js";
import type { CreateJobInput, JobPage, JobResult, JobSnapshot, JobStatus } from "../domain/jobs.js";
import type { Principal } from "../domain/types.js";
import { JobStatusSchema } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import type {
  CreateJobRequest,
  GetJobResultsResponseSchema,
  JobSchema,
  ListJobsResponseSchema,
} from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { enumValueFromWord, enumWordOf } from "./enum-words.js";
import { toEmbedRequest, toEmbeddingMessage } from "./proto-conversion.js";

/** Jobs in a ListJobs page when `limit` is 0. */
export const DEFAULT_JOB_PAGE = 50;
/** Largest `limit` of ListJobs; above it is INVALID_ARGUMENT. */
export const MAX_JOB_PAGE = 1000;

/**
 * A CreateJob request as the job service takes it: the embedding options
 * convert exactly as a GenerateEmbeddings request's do (same defaults, same
 * enum checks; `truncate` does not apply, chunks fit the window), documents
 * keep their id, text and metadata.
 */
export function toCreateJobInput(message: CreateJobRequest, requestId: string, principal: Principal | undefined): CreateJobInput {
  const { texts: _texts, requestId: _id, truncate: _truncate, principal: _principal, ...options } = toEmbedRequest(
    { ...message, texts: [], truncate: 0, allowCrossModelFallback: false },
    requestId,
  );
  return {
    requestId,
    documents: message.documents.map((document) => ({
      id: document.id,
      text: document.text,
      ...(document.metadata === undefined ? {} : { metadata: document.metadata }),
    })),
    options,
    chunking: { chunkSize: message.chunking?.chunkSize ?? 0, chunkOverlap: message.chunking?.chunkOverlap ?? 0 },
    ...(principal === undefined ? {} : { principal }),
  };
}

/** The status filter of ListJobs: undefined for UNSPECIFIED, INVALID_ARGUMENT for an undeclared number. */
export function toJobStatusFilter(status: number): JobStatus | undefined {
  if (status === 0) return undefined;
  const word = enumWordOf(JobStatusSchema, status);
  if (word === undefined) throw new EmbedderError("INVALID_ARGUMENT", `status has an unknown value ${status}`, { details: { field: "status", value: status } });
  return word as JobStatus;
}

/** The page size of ListJobs: 0 = the default; above the largest page is INVALID_ARGUMENT. */
export function toJobPageLimit(limit: number): number {
  if (limit === 0) return DEFAULT_JOB_PAGE;
  if (limit > MAX_JOB_PAGE) {
    throw new EmbedderError("INVALID_ARGUMENT", `limit must be at most ${MAX_JOB_PAGE}`, { details: { field: "limit", value: limit, limit: MAX_JOB_PAGE } });
  }
  return limit;
}

/** A job's state as a `Job` message. */
export function toJobMessage(job: JobSnapshot): MessageInitShape<typeof JobSchema> {
  const time = (ms: number | undefined) => (ms === undefined ? undefined : timestampFromMs(ms));
  return {
    id: job.id,
    status: enumValueFromWord(JobStatusSchema, job.status)?.number ?? 0,
    progress: job.progress,
    documentCount: job.documentCount,
    documentsChunked: job.documentsChunked,
    totalChunks: BigInt(job.totalChunks),
    completedChunks: BigInt(job.completedChunks),
    dispatchedChunks: BigInt(job.dispatchedChunks),
    totalBytes: BigInt(job.totalBytes),
    promptTokens: BigInt(job.promptTokens),
    model: job.model,
    modelId: job.modelId,
    dimensions: job.dimensions,
    chunking: job.chunking,
    createdAt: time(job.createdAt),
    startedAt: time(job.startedAt),
    updatedAt: time(job.updatedAt),
    finishedAt: time(job.finishedAt),
    expiresAt: time(job.expiresAt),
    error: job.error,
    resumes: job.resumes,
  };
}

/** A page of jobs as a ListJobsResponse. */
export function toListJobsResponse(page: JobPage): MessageInitShape<typeof ListJobsResponseSchema> {
  return {
    jobs: page.jobs.map(toJobMessage),
    pagination: { total: page.total, limit: page.limit, offset: page.offset, hasMore: page.hasMore },
  };
}

/** One chunk's result as a GetJobResultsResponse. */
export function toJobResultMessage(result: JobResult): MessageInitShape<typeof GetJobResultsResponseSchema> {
  return {
    documentId: result.documentId,
    documentIndex: result.documentIndex,
    chunkIndex: result.chunkIndex,
    startChar: result.startChar,
    endChar: result.endChar,
    text: result.text,
    tokens: result.tokens,
    embedding: toEmbeddingMessage(result.embedding),
    ...(result.metadata === undefined ? {} : { metadata: result.metadata as JsonObject }),
  };
}
