import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { ChunkingOptions, JobEmbeddingOptions, JobMetadata, JobStatus } from "../domain/jobs.js";
import type { ChunkSpan } from "./chunk-document.js";

/** File name of the job store inside the data folder. */
export const JOB_STORE_FILE = "jobs.sqlite3";

/** How long opening waits for another process to let go of the store, in ms. */
const LOCK_WAIT_MS = 2_000;

/**
 * Schema version this code reads and writes (`PRAGMA user_version`). 1: the
 * first; 2: `chunks.checksum`, a checksum of each stored embedding (see
 * resultChecksum). Older stores are migrated when opened (MIGRATIONS).
 */
const SCHEMA_VERSION = 2;

/**
 * Why the store failed: `full` (no space left, or the store's size limit),
 * `corrupt` (the file is damaged or not a job store), `locked` (another
 * process holds the store), `io` (another I/O failure). The message says what
 * to do; the SQLite error stays in `cause`.
 */
export class JobStoreError extends Error {
  readonly kind: "full" | "corrupt" | "locked" | "io";

  constructor(kind: JobStoreError["kind"], message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "JobStoreError";
    this.kind = kind;
  }
}

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

/** The durable state of document jobs: see openJobStore. */
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

/** Options of openJobStore. */
export interface JobStoreOptions {
  /** The data folder (`SUTRA_DATA_DIR`); created when missing. */
  dataDir: string;
  /**
   * Largest store in bytes (SQLite's page count limit); beyond it writes fail
   * as a full disk would. For tests; absent = the disk's size.
   */
  maxBytes?: number;
}

/** SQLite result codes by what they mean for the store. */
const FULL_CODES = new Set(["SQLITE_FULL"]);
const CORRUPT_CODES = new Set(["SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_CORRUPT_VTAB", "SQLITE_CORRUPT_SEQUENCE", "SQLITE_CORRUPT_INDEX"]);

/** Turns an SQLite failure into a JobStoreError saying what happened and what to do. */
export function toJobStoreError(error: unknown, file: string): unknown {
  if (error instanceof JobStoreError) return error;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== "string") return error;
  if (FULL_CODES.has(code) || code === "SQLITE_IOERR_WRITE" && /space/i.test(String((error as Error).message))) {
    return new JobStoreError("full", `the job store is full: no space left for ${file}; free disk space or wait for finished jobs to expire`, { cause: error });
  }
  if (CORRUPT_CODES.has(code)) {
    return new JobStoreError("corrupt", `the job store ${file} is corrupt (${code}): stop the server, move the file aside (its jobs are lost) or restore a backup, and start it again`, { cause: error });
  }
  if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") {
    return new JobStoreError("locked", `the job store ${file} is in use by another process; give each server its own SUTRA_DATA_DIR`, { cause: error });
  }
  if (code.startsWith("SQLITE_IOERR") || code === "SQLITE_CANTOPEN" || code === "SQLITE_READONLY") {
    return new JobStoreError("io", `the job store ${file} cannot be read or written (${code})`, { cause: error });
  }
  return error;
}

interface JobRow {
  id: string;
  owner: string;
  status: string;
  options: string;
  requested_chunk_size: number;
  requested_chunk_overlap: number;
  chunk_size: number;
  chunk_overlap: number;
  model_id: string;
  dimensions: number;
  document_count: number;
  documents_chunked: number;
  total_chunks: number;
  completed_chunks: number;
  dispatched_chunks: number;
  total_bytes: number;
  prompt_tokens: number;
  created_at: number;
  started_at: number | null;
  updated_at: number;
  finished_at: number | null;
  expires_at: number | null;
  error_code: string | null;
  error_message: string | null;
  resumes: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  owner TEXT NOT NULL,
  status TEXT NOT NULL,
  options TEXT NOT NULL,
  requested_chunk_size INTEGER NOT NULL,
  requested_chunk_overlap INTEGER NOT NULL,
  chunk_size INTEGER NOT NULL DEFAULT 0,
  chunk_overlap INTEGER NOT NULL DEFAULT 0,
  model_id TEXT NOT NULL DEFAULT '',
  dimensions INTEGER NOT NULL DEFAULT 0,
  document_count INTEGER NOT NULL,
  documents_chunked INTEGER NOT NULL DEFAULT 0,
  total_chunks INTEGER NOT NULL DEFAULT 0,
  completed_chunks INTEGER NOT NULL DEFAULT 0,
  dispatched_chunks INTEGER NOT NULL DEFAULT 0,
  total_bytes INTEGER NOT NULL,
  prompt_tokens INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER,
  expires_at INTEGER,
  error_code TEXT,
  error_message TEXT,
  resumes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, seq);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_by_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS documents (
  job_id TEXT NOT NULL,
  doc_index INTEGER NOT NULL,
  doc_id TEXT NOT NULL,
  text TEXT NOT NULL,
  metadata TEXT,
  chunk_count INTEGER,
  PRIMARY KEY (job_id, doc_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
  job_id TEXT NOT NULL,
  doc_index INTEGER NOT NULL,
  chunk_index INTEGER NOT NULL,
  start_unit INTEGER NOT NULL,
  end_unit INTEGER NOT NULL,
  start_char INTEGER NOT NULL,
  end_char INTEGER NOT NULL,
  tokens INTEGER NOT NULL,
  embedding BLOB,
  checksum INTEGER,
  PRIMARY KEY (job_id, doc_index, chunk_index)
);
`;

/**
 * What brings a store of the version before each key up to that version; a
 * store is migrated one version at a time, in one transaction with its new
 * `user_version`. A store at version 0 is new and gets SCHEMA as it is.
 */
const MIGRATIONS: ReadonlyMap<number, string> = new Map([
  // Rows stored before keep a NULL checksum: they are checked for plausibility instead (StoredResult.intact).
  [2, "ALTER TABLE chunks ADD COLUMN checksum INTEGER"],
]);

/**
 * Opens (or creates) the job store: one SQLite database, `jobs.sqlite3` in
 * the data folder, through better-sqlite3. Write-ahead log with
 * `synchronous=FULL`: every transaction is on disk (fsync) when it returns,
 * so a `kill -9` or a power cut loses nothing committed. Opening reads the
 * schema and the job table, so a damaged or foreign file is refused at once
 * with a JobStoreError of kind `corrupt`, and takes an exclusive lock held
 * until close, so a second process on the same folder gets one of kind
 * `locked` (two servers would run the same jobs); SQLite failures later become
 * JobStoreErrors too (`full`, `corrupt`, `io`). Each stored embedding carries
 * a checksum of its bytes and its row's identity, checked when results are
 * read (`StoredResult.intact`), so bytes damaged on disk are reported rather
 * than served. A store of an older schema is migrated when opened. Calls are
 * synchronous (they run on the event loop): each is one short transaction.
 */
export function openJobStore(options: JobStoreOptions): JobStore {
  mkdirSync(options.dataDir, { recursive: true });
  const file = join(options.dataDir, JOB_STORE_FILE);
  const guard = <T>(work: () => T): T => {
    try {
      return work();
    } catch (error) {
      throw toJobStoreError(error, file);
    }
  };
  const db = guard(() => {
    const opened = new Database(file, { timeout: LOCK_WAIT_MS });
    try {
      // One process per store, held until close (the OS drops the lock of a killed process).
      opened.pragma("locking_mode = EXCLUSIVE");
      opened.pragma("journal_mode = WAL");
      opened.pragma("synchronous = FULL");
      opened.pragma("foreign_keys = ON");
      const version = opened.pragma("user_version", { simple: true }) as number;
      if (version > SCHEMA_VERSION) {
        throw new JobStoreError("corrupt", `the job store ${file} has schema version ${version}, newer than this server's ${SCHEMA_VERSION}`);
      }
      opened.transaction(() => {
        if (version === 0) opened.exec(SCHEMA);
        else for (let next = version + 1; next <= SCHEMA_VERSION; next++) opened.exec(MIGRATIONS.get(next) ?? "");
        opened.pragma(`user_version = ${SCHEMA_VERSION}`);
      }).immediate();
      if (options.maxBytes !== undefined) {
        const pageSize = opened.pragma("page_size", { simple: true }) as number;
        opened.pragma(`max_page_count = ${Math.max(1, Math.floor(options.maxBytes / pageSize))}`);
      }
      opened.prepare("SELECT count(*) FROM jobs").get();
      opened.exec("BEGIN IMMEDIATE; COMMIT");
      return opened;
    } catch (error) {
      opened.close();
      throw error;
    }
  });

  const statements = {
    insertJob: db.prepare(`INSERT INTO jobs (id, owner, status, options, requested_chunk_size, requested_chunk_overlap, document_count, total_bytes, created_at, updated_at)
      VALUES (@id, @owner, @status, @options, @requestedChunkSize, @requestedChunkOverlap, @documentCount, @totalBytes, @createdAt, @updatedAt)`),
    insertDocument: db.prepare("INSERT INTO documents (job_id, doc_index, doc_id, text, metadata) VALUES (?, ?, ?, ?, ?)"),
    getJob: db.prepare<[string], JobRow>("SELECT * FROM jobs WHERE id = ?"),
    countActive: db.prepare<[string], { count: number }>("SELECT count(*) AS count FROM jobs WHERE owner = ? AND status IN ('queued', 'running')"),
    queued: db.prepare<[], JobRow>("SELECT * FROM jobs WHERE status = 'queued' ORDER BY seq"),
    running: db.prepare<[], { id: string }>("SELECT id FROM jobs WHERE status = 'running'"),
    requeue: db.prepare("UPDATE jobs SET status = 'queued', resumes = resumes + 1, updated_at = ? WHERE status = 'running'"),
    markRunning: db.prepare(`UPDATE jobs SET status = 'running', model_id = @modelId, dimensions = @dimensions, chunk_size = @chunkSize,
      chunk_overlap = @chunkOverlap, started_at = coalesce(started_at, @now), updated_at = @now WHERE id = @id AND status = 'queued'`),
    document: db.prepare<[string, number], { doc_index: number; doc_id: string; text: string; metadata: string | null; chunk_count: number | null }>(
      "SELECT doc_index, doc_id, text, metadata, chunk_count FROM documents WHERE job_id = ? AND doc_index = ?"),
    unchunked: db.prepare<[string], { doc_index: number }>("SELECT doc_index FROM documents WHERE job_id = ? AND chunk_count IS NULL ORDER BY doc_index"),
    insertChunk: db.prepare(`INSERT OR IGNORE INTO chunks (job_id, doc_index, chunk_index, start_unit, end_unit, start_char, end_char, tokens)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
    setChunkCount: db.prepare("UPDATE documents SET chunk_count = ? WHERE job_id = ? AND doc_index = ? AND chunk_count IS NULL"),
    addChunked: db.prepare("UPDATE jobs SET documents_chunked = documents_chunked + 1, total_chunks = total_chunks + ?, updated_at = ? WHERE id = ?"),
    pending: db.prepare<[string, number, number, number], { doc_index: number; chunk_index: number; start_unit: number; end_unit: number; tokens: number }>(
      `SELECT doc_index, chunk_index, start_unit, end_unit, tokens FROM chunks
       WHERE job_id = ? AND (doc_index, chunk_index) > (?, ?) AND embedding IS NULL ORDER BY doc_index, chunk_index LIMIT ?`),
    addDispatched: db.prepare("UPDATE jobs SET dispatched_chunks = dispatched_chunks + ?, updated_at = ? WHERE id = ? AND status = 'running'"),
    removeDispatched: db.prepare("UPDATE jobs SET dispatched_chunks = max(0, dispatched_chunks - ?), updated_at = ? WHERE id = ?"),
    jobStatus: db.prepare<[string], { status: string }>("SELECT status FROM jobs WHERE id = ?"),
    openChunk: db.prepare<[string, number, number], ChunkIdentity>(
      `SELECT c.doc_index, d.doc_id, c.chunk_index, c.start_unit, c.end_unit, c.start_char, c.end_char, c.tokens FROM chunks c
       JOIN documents d ON d.job_id = c.job_id AND d.doc_index = c.doc_index
       WHERE c.job_id = ? AND c.doc_index = ? AND c.chunk_index = ? AND c.embedding IS NULL`),
    storeEmbedding: db.prepare("UPDATE chunks SET embedding = ?, checksum = ? WHERE job_id = ? AND doc_index = ? AND chunk_index = ? AND embedding IS NULL"),
    addCompleted: db.prepare("UPDATE jobs SET completed_chunks = completed_chunks + ?, prompt_tokens = prompt_tokens + ?, updated_at = ? WHERE id = ?"),
    finish: db.prepare(`UPDATE jobs SET status = @status, finished_at = @now, updated_at = @now, expires_at = @expiresAt,
      error_code = @errorCode, error_message = @errorMessage WHERE id = @id AND status IN ('queued', 'running')`),
    resultShape: db.prepare<[string], { dimensions: number; options: string }>("SELECT dimensions, options FROM jobs WHERE id = ?"),
    resultsAfter: db.prepare<[string, number, number, number], ResultRow>(
      `SELECT c.doc_index, d.doc_id, c.chunk_index, c.start_unit, c.end_unit, c.start_char, c.end_char, c.tokens, c.embedding, c.checksum FROM chunks c
       LEFT JOIN documents d ON d.job_id = c.job_id AND d.doc_index = c.doc_index
       WHERE c.job_id = ? AND (c.doc_index, c.chunk_index) > (?, ?) AND c.embedding IS NOT NULL ORDER BY c.doc_index, c.chunk_index LIMIT ?`),
    resultsFrom: db.prepare<[string, number, number], ResultRow>(
      `SELECT c.doc_index, d.doc_id, c.chunk_index, c.start_unit, c.end_unit, c.start_char, c.end_char, c.tokens, c.embedding, c.checksum FROM chunks c
       LEFT JOIN documents d ON d.job_id = c.job_id AND d.doc_index = c.doc_index
       WHERE c.job_id = ? AND c.embedding IS NOT NULL ORDER BY c.doc_index, c.chunk_index LIMIT ? OFFSET ?`),
    expired: db.prepare<[number], { id: string }>("SELECT id FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ?"),
    deleteChunks: db.prepare("DELETE FROM chunks WHERE job_id = ?"),
    deleteDocuments: db.prepare("DELETE FROM documents WHERE job_id = ?"),
    deleteJob: db.prepare("DELETE FROM jobs WHERE id = ?"),
  };

  const insertJob = db.transaction((job: StoredJob, documents: Array<Omit<StoredDocument, "index" | "chunkCount">>) => {
    statements.insertJob.run({
      id: job.id,
      owner: job.owner,
      status: job.status,
      options: JSON.stringify(job.options),
      requestedChunkSize: job.requestedChunking.chunkSize,
      requestedChunkOverlap: job.requestedChunking.chunkOverlap,
      documentCount: job.documentCount,
      totalBytes: job.totalBytes,
      createdAt: job.createdAt,
      updatedAt: job.updatedAt,
    });
    documents.forEach((document, index) => {
      statements.insertDocument.run(job.id, index, document.id, document.text, document.metadata === undefined ? null : JSON.stringify(document.metadata));
    });
  });
  const saveChunks = db.transaction((jobId: string, documents: Array<{ documentIndex: number; chunks: ChunkSpan[] }>, now: number) => {
    for (const { documentIndex, chunks } of documents) {
      chunks.forEach((chunk, index) => {
        statements.insertChunk.run(jobId, documentIndex, index, chunk.start, chunk.end, chunk.startChar, chunk.endChar, chunk.tokens);
      });
      if (statements.setChunkCount.run(chunks.length, jobId, documentIndex).changes === 1) statements.addChunked.run(chunks.length, now, jobId);
    }
  });
  const commitResults = db.transaction((jobId: string, results: Parameters<JobStore["commitResults"]>[1], now: number) => {
    if (statements.jobStatus.get(jobId)?.status !== "running") return 0;
    let stored = 0;
    let tokens = 0;
    for (const result of results) {
      const chunk = statements.openChunk.get(jobId, result.documentIndex, result.chunkIndex);
      if (chunk === undefined) continue;
      const blob = Buffer.from(result.embedding.buffer, result.embedding.byteOffset, result.embedding.byteLength);
      if (statements.storeEmbedding.run(blob, resultChecksum(jobId, chunk, blob), jobId, result.documentIndex, result.chunkIndex).changes === 1) {
        stored++;
        tokens += result.tokens;
      }
    }
    statements.addCompleted.run(stored, tokens, now, jobId);
    return stored;
  });
  const requeueRunning = db.transaction((now: number) => {
    const ids = statements.running.all().map((row) => row.id);
    statements.requeue.run(now);
    return ids;
  });
  const deleteExpired = db.transaction((now: number) => {
    const ids = statements.expired.all(now).map((row) => row.id);
    for (const id of ids) {
      statements.deleteChunks.run(id);
      statements.deleteDocuments.run(id);
      statements.deleteJob.run(id);
    }
    return ids.length;
  });

  return {
    insertJob: (job, documents) => guard(() => insertJob(job, documents)),
    getJob: (id) => guard(() => {
      const row = statements.getJob.get(id);
      return row === undefined ? undefined : fromRow(row);
    }),
    listJobs: ({ owner, status, limit, offset }) => guard(() => {
      const conditions = [...(owner === undefined ? [] : ["owner = @owner"]), ...(status === undefined ? [] : ["status = @status"])];
      const where = conditions.length === 0 ? "" : `WHERE ${conditions.join(" AND ")}`;
      const parameters = { ...(owner === undefined ? {} : { owner }), ...(status === undefined ? {} : { status }) };
      const total = (db.prepare(`SELECT count(*) AS count FROM jobs ${where}`).get(parameters) as { count: number }).count;
      const rows = db.prepare(`SELECT * FROM jobs ${where} ORDER BY seq DESC LIMIT @limit OFFSET @offset`).all({ ...parameters, limit, offset }) as JobRow[];
      return { jobs: rows.map(fromRow), total };
    }),
    countActive: (owner) => guard(() => statements.countActive.get(owner)?.count ?? 0),
    nextQueued: (busy) => guard(() => {
      for (const row of statements.queued.iterate()) {
        if (!busy.has(row.id)) return fromRow(row);
      }
      return undefined;
    }),
    requeueRunning: (now) => guard(() => requeueRunning(now)),
    markRunning: (id, values) => guard(() => {
      statements.markRunning.run({ id, ...values.chunking, modelId: values.modelId, dimensions: values.dimensions, now: values.now });
    }),
    document: (jobId, index) => guard(() => {
      const row = statements.document.get(jobId, index);
      if (row === undefined) return undefined;
      return {
        index: row.doc_index,
        id: row.doc_id,
        text: row.text,
        ...(row.metadata === null ? {} : { metadata: JSON.parse(row.metadata) as JobMetadata }),
        ...(row.chunk_count === null ? {} : { chunkCount: row.chunk_count }),
      };
    }),
    unchunkedDocuments: (jobId) => guard(() => statements.unchunked.all(jobId).map((row) => row.doc_index)),
    saveChunks: (jobId, documents, now) => guard(() => saveChunks(jobId, documents, now)),
    pendingChunks: (jobId, after, limit) => guard(() => statements.pending.all(jobId, after.documentIndex, after.chunkIndex, limit).map((row) => ({
      documentIndex: row.doc_index, chunkIndex: row.chunk_index, start: row.start_unit, end: row.end_unit, tokens: row.tokens,
    }))),
    addDispatched: (jobId, count, now) => guard(() => statements.addDispatched.run(count, now, jobId).changes === 1),
    removeDispatched: (jobId, count, now) => guard(() => {
      statements.removeDispatched.run(count, now, jobId);
    }),
    commitResults: (jobId, results, now) => guard(() => commitResults(jobId, results, now)),
    finishJob: (id, values) => guard(() => statements.finish.run({
      id,
      status: values.status,
      now: values.now,
      expiresAt: values.expiresAt,
      errorCode: values.error?.code ?? null,
      errorMessage: values.error?.message ?? null,
    }).changes === 1),
    results: (jobId, from, limit) => guard(() => {
      const rows = from.after !== undefined
        ? statements.resultsAfter.all(jobId, from.after.documentIndex, from.after.chunkIndex, limit)
        : statements.resultsFrom.all(jobId, limit, from.offset ?? 0);
      const shape = statements.resultShape.get(jobId);
      const expected = { dimensions: shape?.dimensions ?? 0, normalized: shape !== undefined && (JSON.parse(shape.options) as JobEmbeddingOptions).normalize };
      return rows.map((row) => {
        const embedding = row.embedding.byteLength % 4 === 0
          ? new Float32Array(row.embedding.buffer.slice(row.embedding.byteOffset, row.embedding.byteOffset + row.embedding.byteLength))
          : new Float32Array(0);
        return {
          documentIndex: row.doc_index,
          chunkIndex: row.chunk_index,
          start: row.start_unit,
          end: row.end_unit,
          startChar: row.start_char,
          endChar: row.end_char,
          tokens: row.tokens,
          embedding,
          intact: row.doc_id !== null && (row.checksum === null
            ? plausibleEmbedding(embedding, row.embedding.byteLength, expected)
            : row.checksum === resultChecksum(jobId, { ...row, doc_id: row.doc_id }, row.embedding)),
        };
      });
    }),
    deleteExpired: (now) => guard(() => deleteExpired(now)),
    close: () => db.close(),
  };
}

interface ResultRow {
  doc_index: number;
  /** NULL when the document row is gone (a damaged store). */
  doc_id: string | null;
  chunk_index: number;
  start_unit: number;
  end_unit: number;
  start_char: number;
  end_char: number;
  tokens: number;
  embedding: Buffer;
  /** NULL for a row stored before checksums (schema 1). */
  checksum: number | null;
}

/** What names a chunk's row and where its text lies: what its checksum covers besides the embedding. */
type ChunkIdentity = Omit<ResultRow, "embedding" | "checksum" | "doc_id"> & { doc_id: string };

/**
 * The checksum stored with a chunk's embedding: the first 48 bits of the
 * SHA-256 of the row's identity (job id, document id and index, chunk index,
 * offsets, tokens) and the embedding's bytes, so damaged bytes, and a row
 * moved to or swapped with another place, do not match it.
 */
function resultChecksum(jobId: string, row: ChunkIdentity, embedding: Uint8Array): number {
  const identity = JSON.stringify([jobId, row.doc_id, row.doc_index, row.chunk_index, row.start_unit, row.end_unit, row.start_char, row.end_char, row.tokens]);
  return createHash("sha256").update(identity).update(embedding).digest().readUIntBE(0, 6);
}

/** Largest distance from 1 of a normalized vector's L2 norm (float32 rounding stays far below). */
const NORM_TOLERANCE = 1e-3;

/** Whether a row stored without a checksum holds what the job's embeddings look like: the right size, finite values, norm 1 when normalized. */
function plausibleEmbedding(embedding: Float32Array, byteLength: number, expected: { dimensions: number; normalized: boolean }): boolean {
  if (byteLength !== expected.dimensions * 4 || embedding.length === 0) return false;
  let squares = 0;
  for (const value of embedding) {
    if (!Number.isFinite(value)) return false;
    squares += value * value;
  }
  return !expected.normalized || Math.abs(Math.sqrt(squares) - 1) <= NORM_TOLERANCE;
}

function fromRow(row: JobRow): StoredJob {
  return {
    id: row.id,
    owner: row.owner,
    status: row.status as JobStatus,
    options: JSON.parse(row.options) as JobEmbeddingOptions,
    requestedChunking: { chunkSize: row.requested_chunk_size, chunkOverlap: row.requested_chunk_overlap },
    chunking: { chunkSize: row.chunk_size, chunkOverlap: row.chunk_overlap },
    modelId: row.model_id,
    dimensions: row.dimensions,
    documentCount: row.document_count,
    documentsChunked: row.documents_chunked,
    totalChunks: row.total_chunks,
    completedChunks: row.completed_chunks,
    dispatchedChunks: row.dispatched_chunks,
    totalBytes: row.total_bytes,
    promptTokens: row.prompt_tokens,
    createdAt: row.created_at,
    ...(row.started_at === null ? {} : { startedAt: row.started_at }),
    updatedAt: row.updated_at,
    ...(row.finished_at === null ? {} : { finishedAt: row.finished_at }),
    ...(row.expires_at === null ? {} : { expiresAt: row.expires_at }),
    ...(row.error_code === null ? {} : { error: { code: row.error_code, message: row.error_message ?? "" } }),
    resumes: row.resumes,
  };
}
