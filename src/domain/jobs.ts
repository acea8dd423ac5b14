import type { EmbedRequest, EncodedEmbedding, Principal } from "./types.js";

/** Where a document job stands (docs/JOBS.md). */
export type JobStatus = "queued" | "running" | "completed" | "failed" | "cancelled";

/** Statuses a job never leaves. */
export const FINISHED_JOB_STATUSES: readonly JobStatus[] = ["completed", "failed", "cancelled"];

/** Any JSON object a client attaches to a document; repeated on each of its results. */
export type JobMetadata = { [key: string]: unknown };

/** One document of a job. */
export interface JobDocumentInput {
  /** The client's id; empty = `doc-<index>`. */
  id: string;
  text: string;
  metadata?: JobMetadata;
}

/**
 * How documents are cut, in tokens of the target model. `chunkSize` 0 = the
 * most the model takes (its window less the instruction or prompt);
 * `chunkOverlap` 0 = none.
 */
export interface ChunkingOptions {
  chunkSize: number;
  chunkOverlap: number;
}

/** The embedding options of a request that a job keeps and applies to every chunk. */
export type JobEmbeddingOptions = Pick<
  EmbedRequest,
  "model" | "dimensions" | "config" | "instruction" | "promptName" | "normalize" | "embeddingTypes" | "allowCrossModelFallback" | "user"
>;

/** A job as a client creates it. */
export interface CreateJobInput {
  requestId: string;
  documents: JobDocumentInput[];
  options: JobEmbeddingOptions;
  chunking: ChunkingOptions;
  principal?: Principal;
}

/** A job's state as GetJob shows it; times are epoch milliseconds. */
export interface JobSnapshot {
  id: string;
  status: JobStatus;
  /** completedChunks / totalChunks once every document is chunked, else 0; 0..1. */
  progress: number;
  documentCount: number;
  documentsChunked: number;
  totalChunks: number;
  completedChunks: number;
  /** Chunks handed to inference over all runs (an upper bound of the work done). */
  dispatchedChunks: number;
  totalBytes: number;
  promptTokens: number;
  model: string;
  modelId: string;
  dimensions: number;
  /** The chunking in force, defaults filled in once the job started (0 until then when asked for). */
  chunking: ChunkingOptions;
  createdAt: number;
  startedAt?: number;
  updatedAt: number;
  finishedAt?: number;
  expiresAt?: number;
  error?: { code: string; message: string };
  resumes: number;
}

/** One page of jobs, newest first. */
export interface JobPage {
  jobs: JobSnapshot[];
  total: number;
  limit: number;
  offset: number;
  hasMore: boolean;
}

/** One chunk's embedding, as GetJobResults streams it. Offsets are in code points, end exclusive. */
export interface JobResult {
  documentId: string;
  documentIndex: number;
  chunkIndex: number;
  startChar: number;
  endChar: number;
  text: string;
  tokens: number;
  embedding: EncodedEmbedding;
  metadata?: JobMetadata;
}

/**
 * The document-job seam the transports call. A caller sees its own jobs (an
 * admin sees every job); someone else's job is JOB_NOT_FOUND, as is an
 * unknown or expired one.
 */
export interface JobService {
  /** Validates (limits, model, chunking) and queues a job; INVALID_ARGUMENT, PAYLOAD_TOO_LARGE, RATE_LIMITED... otherwise. */
  create(input: CreateJobInput): Promise<JobSnapshot>;
  get(jobId: string, principal?: Principal): JobSnapshot;
  list(filter: { status?: JobStatus; limit: number; offset: number }, principal?: Principal): JobPage;
  /** Cancels a queued or running job (work stops within one batch); a finished job is answered as it is. */
  cancel(jobId: string, principal?: Principal): JobSnapshot;
  /** The committed results in document and chunk order, from the `offset`-th one. */
  results(jobId: string, options: { offset: number }, principal?: Principal): AsyncIterable<JobResult>;
}
