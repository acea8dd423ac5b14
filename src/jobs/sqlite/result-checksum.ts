import { createHash } from "node:crypto";

/** What names a chunk's row and where its text lies (the row's columns): what its checksum covers besides the embedding. */
export interface ChunkIdentity {
  doc_index: number;
  doc_id: string;
  chunk_index: number;
  start_unit: number;
  end_unit: number;
  start_char: number;
  end_char: number;
  tokens: number;
}

/**
 * The checksum stored with a chunk's embedding: the first 48 bits of the
 * SHA-256 of the row's identity (job id, document id and index, chunk index,
 * offsets, tokens) and the embedding's bytes, so damaged bytes, and a row
 * moved to or swapped with another place, do not match it.
 */
export function resultChecksum(jobId: string, row: ChunkIdentity, embedding: Uint8Array): number {
  const identity = JSON.stringify([jobId, row.doc_id, row.doc_index, row.chunk_index, row.start_unit, row.end_unit, row.start_char, row.end_char, row.tokens]);
  return createHash("sha256").update(identity).update(embedding).digest().readUIntBE(0, 6);
}

/** Largest distance from 1 of a normalized vector's L2 norm (float32 rounding stays far below). */
const NORM_TOLERANCE = 1e-3;

/**
 * Whether a row stored without a checksum (schema 1) holds what the job's
 * embeddings look like: the right size, finite values, norm 1 when
 * normalized. The best check such a row allows, so damage to it is still
 * reported rather than served.
 */
export function plausibleEmbedding(embedding: Float32Array, byteLength: number, expected: { dimensions: number; normalized: boolean }): boolean {
  if (byteLength !== expected.dimensions * 4 || embedding.length === 0) return false;
  let squares = 0;
  for (const value of embedding) {
    if (!Number.isFinite(value)) return false;
    squares += value * value;
  }
  return !expected.normalized || Math.abs(Math.sqrt(squares) - 1) <= NORM_TOLERANCE;
}
