import type { ChunkingOptions, JobEmbeddingOptions, JobMetadata, JobStatus } from "../domain/jobs.js";
import type { ChunkSpan } from "./chunk-document.js";

/*
 * The store's contract, apart from any database: the job service depends on
 * these types only, and each implementation (today SQLite, `./sqlite/`)
 * provides them. The SQLite factory and its error mapping are exported here
 * too, so callers open the store from one place.
 */
export { JobStoreError } from "./job-store-error.js";
export { JOB_STORE_FILE, openJobStore } from "./sqlite/open-job-store.js";
export type { JobStoreOptions } from "./sqlite/open-job-store.js";
export { toJobStoreError } from "./sqlite/to-job-store-error.js";

/** A job row as the store keeps it. */
export interface StoredJob {
  id: string;
  owner: string;
  status: JobStatus;
  options: JobEmbeddingOptions;
  /** As requested (0 = default). */
  requestedChunking: ChunkingOptions;
  /** In force once the job started (0 before). */
  chunking: ChunkingOptions;
  modelId: string;
  dimensions: number;
  documentCount: number;
  documentsChunked: number;
  totalChunks: number;
  completedChunks: number;
  dispatchedChunks: number;
  totalBytes: number;
  promptTokens: number;
  createdAt: number;
  startedAt?: number;
  updatedAt: number;
  finishedAt?: number;
  expiresAt?: number;
  error?: { code: string; message: string };
  resumes: number;
}

/** A document row. */
export interface StoredDocument {
  index: number;
  id: string;
  text: string;
  metadata?: JobMetadata;
  /** Chunks once the document was cut, else undefined. */
  chunkCount?: number;
}

/** A chunk waiting for its embedding. */
export interface PendingChunk {
  documentIndex: number;
  chunkIndex: number;
  start: number;
  end: number;
  tokens: number;
}

/** A committed chunk with what GetJobResults needs besides the document. */
export interface StoredResult {
  documentIndex: number;
  chunkIndex: number;
  start: number;
  end: number;
  startChar: number;
  endChar: number;
  tokens: number;
  embedding: Float32Array;
  /**
   * False when the row was damaged on disk: its checksum does not match its
   * embedding and identity (job, document, chunk, offsets), or, for a row
   * stored before checksums (schema 1), its embedding is not plausible (not
   * the job's dimensions, a value not finite, or not of norm 1 when the job
   * asked for normalized vectors).
   */
  intact: boolean;
}

/** The durable state of document jobs, whatever the database holds it (SQLite: openJobStore). */
export interface JobStore {
  insertJob(job: StoredJob, documents: Array<Omit<StoredDocument, "index" | "chunkCount">>): void;
  getJob(id: string): StoredJob | undefined;
  /** Jobs of `owner` (every owner when undefined) newest first, with the count of all matches. */
  listJobs(filter: { owner?: string; status?: JobStatus; limit: number; offset: number }): { jobs: StoredJob[]; total: number };
  /** Queued and running jobs of an owner. */
  countActive(owner: string): number;
  /** The oldest queued job, if any, skipping `busy` ids. */
  nextQueued(busy: ReadonlySet<string>): StoredJob | undefined;
  /** Running jobs go back to queued with `resumes` + 1 (the process that ran them is gone). Returns their ids. */
  requeueRunning(now: number): string[];
  markRunning(id: string, values: { modelId: string; dimensions: number; chunking: ChunkingOptions; now: number }): void;
  document(jobId: string, index: number): StoredDocument | undefined;
  /** Documents not cut yet, in order (ids and indices only: texts are read one at a time). */
  unchunkedDocuments(jobId: string): number[];
  /** Records documents' chunks and counts, atomically (one transaction, so one fsync, for all of them). */
  saveChunks(jobId: string, documents: Array<{ documentIndex: number; chunks: ChunkSpan[] }>, now: number): void;
  /** Up to `limit` chunks without an embedding after the (document, chunk) cursor, in order. */
  pendingChunks(jobId: string, after: { documentIndex: number; chunkIndex: number }, limit: number): PendingChunk[];
  /**
   * Counts chunks about to be handed to inference (committed before they are),
   * only while the job is running; false (nothing counted) when it is not.
   */
  addDispatched(jobId: string, count: number, now: number): boolean;
  /** Takes back chunks addDispatched counted that the pipeline refused before running any of them. */
  removeDispatched(jobId: string, count: number, now: number): void;
  /**
   * Stores embeddings of chunks that have none yet, and the job's counts, in
   * one transaction; a chunk that already has one is left as it is (exactly
   * once). Returns how many were stored. Nothing is stored unless the job is
   * still running.
   */
  commitResults(jobId: string, results: Array<{ documentIndex: number; chunkIndex: number; embedding: Float32Array; tokens: number }>, now: number): number;
  /** Moves a queued or running job to a final status; returns false when it was already final. */
  finishJob(id: string, values: { status: JobStatus; now: number; expiresAt: number; error?: { code: string; message: string } }): boolean;
  /**
   * Committed results in order, after the cursor (or from the `offset`-th one
   * when no cursor), each checked against its checksum (`intact`).
   */
  results(jobId: string, from: { after?: { documentIndex: number; chunkIndex: number }; offset?: number }, limit: number): StoredResult[];
  /** Deletes jobs whose retention ended; returns their count. */
  deleteExpired(now: number): number;
  close(): void;
}
