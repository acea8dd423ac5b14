import type Database from "better-sqlite3";
import type { JobEmbeddingOptions } from "../../domain/jobs.js";
import type { JobStore } from "../job-store.js";
import { plausibleEmbedding, resultChecksum } from "./result-checksum.js";
import type { ChunkIdentity } from "./result-checksum.js";
import type { StoreGuard } from "./to-job-store-error.js";

/** A committed chunk as the results query reads it. */
interface ResultRow extends Omit<ChunkIdentity, "doc_id"> {
  /** NULL when the document row is gone (a damaged store). */
  doc_id: string | null;
  embedding: Buffer;
  /** NULL for a row stored before checksums (schema 1). */
  checksum: number | null;
}

/**
 * The job store's `results` (its contract is JobStore's), run inside
 * `guard`: committed chunks in order, each checked as it is read, against its
 * checksum (resultChecksum) or, for a row stored before checksums, for
 * plausibility (plausibleEmbedding), so bytes damaged on disk are reported
 * (`intact: false`) rather than served.
 */
export function createResultRows(db: Database.Database, guard: StoreGuard): Pick<JobStore, "results"> {
  const statements = {
    resultShape: db.prepare<[string], { dimensions: number; options: string }>("SELECT dimensions, options FROM jobs WHERE id = ?"),
    resultsAfter: db.prepare<[string, number, number, number], ResultRow>(
      `SELECT c.doc_index, d.doc_id, c.chunk_index, c.start_unit, c.end_unit, c.start_char, c.end_char, c.tokens, c.embedding, c.checksum FROM chunks c
       LEFT JOIN documents d ON d.job_id = c.job_id AND d.doc_index = c.doc_index
       WHERE c.job_id = ? AND (c.doc_index, c.chunk_index) > (?, ?) AND c.embedding IS NOT NULL ORDER BY c.doc_index, c.chunk_index LIMIT ?`),
    resultsFrom: db.prepare<[string, number, number], ResultRow>(
      `SELECT c.doc_index, d.doc_id, c.chunk_index, c.start_unit, c.end_unit, c.start_char, c.end_char, c.tokens, c.embedding, c.checksum FROM chunks c
       LEFT JOIN documents d ON d.job_id = c.job_id AND d.doc_index = c.doc_index
       WHERE c.job_id = ? AND c.embedding IS NOT NULL ORDER BY c.doc_index, c.chunk_index LIMIT ? OFFSET ?`),
  };

  return {
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
  };
}
