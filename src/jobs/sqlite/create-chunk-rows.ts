import type Database from "better-sqlite3";
import type { JobMetadata } from "../../domain/jobs.js";
import type { ChunkSpan } from "../chunk-document.js";
import type { JobStore } from "../job-store.js";
import { resultChecksum } from "./result-checksum.js";
import type { ChunkIdentity } from "./result-checksum.js";
import type { StoreGuard } from "./to-job-store-error.js";

/** The job store's calls a running job makes: reading documents, saving chunks, counting dispatches, committing embeddings. */
export type ChunkRows = Pick<JobStore, "document" | "unchunkedDocuments" | "saveChunks" | "pendingChunks" | "addDispatched" | "removeDispatched" | "commitResults">;

/**
 * The job store's calls on `documents` and `chunks` while a job runs, with
 * the job's counts they move, each run inside `guard`; their contracts are
 * JobStore's. A document's chunks and its `chunk_count` are saved together,
 * so a resumed job cuts only documents not saved yet; an embedding is stored
 * only into a chunk that has none (exactly once), with its checksum
 * (resultChecksum), in the transaction that adds it to the job's counts.
 */
export function createChunkRows(db: Database.Database, guard: StoreGuard): ChunkRows {
  const statements = {
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
  };

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

  return {
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
  };
}
