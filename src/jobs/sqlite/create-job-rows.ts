import type Database from "better-sqlite3";
import type { JobEmbeddingOptions, JobStatus } from "../../domain/jobs.js";
import type { JobStore, StoredDocument, StoredJob } from "../job-store.js";
import type { StoreGuard } from "./to-job-store-error.js";

/** The job store's calls on job rows: creating, reading, listing and moving jobs between statuses. */
export type JobRows = Pick<JobStore, "insertJob" | "getJob" | "listJobs" | "countActive" | "nextQueued" | "requeueRunning" | "markRunning" | "finishJob">;

/** A row of the `jobs` table. */
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

/**
 * The job store's calls on the `jobs` table (and a new job's documents),
 * each run inside `guard`; their contracts are JobStore's. Status moves are
 * single conditional updates (`markRunning` from queued only, `finishJob`
 * from queued or running only), so a job cancelled meanwhile stays cancelled.
 */
export function createJobRows(db: Database.Database, guard: StoreGuard): JobRows {
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
    finish: db.prepare(`UPDATE jobs SET status = @status, finished_at = @now, updated_at = @now, expires_at = @expiresAt,
      error_code = @errorCode, error_message = @errorMessage WHERE id = @id AND status IN ('queued', 'running')`),
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
  const requeueRunning = db.transaction((now: number) => {
    const ids = statements.running.all().map((row) => row.id);
    statements.requeue.run(now);
    return ids;
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
    finishJob: (id, values) => guard(() => statements.finish.run({
      id,
      status: values.status,
      now: values.now,
      expiresAt: values.expiresAt,
      errorCode: values.error?.code ?? null,
      errorMessage: values.error?.message ?? null,
    }).changes === 1),
  };
}

/** The StoredJob a row holds. */
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
