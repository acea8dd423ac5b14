/** A text's neighbour: its index and their cosine similarity. */
export interface Neighbour {
  index: number;
  similarity: number;
}

/**
 * Cosine similarity of two vectors of the same length, in double precision:
 * dot(a, b) / (|a| |b|), 0 when either is all zeros. Normalised embeddings
 * (the server's default) make it the dot product, up to rounding.
 */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`vectors differ in length: ${a.length} and ${b.length}`);
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let index = 0; index < a.length; index += 1) {
    dot += a[index] * b[index];
    normA += a[index] * a[index];
    normB += b[index] * b[index];
  }
  return normA === 0 || normB === 0 ? 0 : dot / Math.sqrt(normA * normB);
}

/** The matrix of cosine similarities of every pair of vectors (symmetric, 1 on the diagonal for non-zero vectors). */
export function similarityMatrix(vectors: ReadonlyArray<ArrayLike<number>>): number[][] {
  return vectors.map((a) => vectors.map((b) => cosineSimilarity(a, b)));
}

/** For each row of a similarity matrix, the other indices from most to least similar, at most `k` of them. */
export function nearestNeighbours(matrix: ReadonlyArray<ReadonlyArray<number>>, k = 3): Neighbour[][] {
  return matrix.map((row, self) =>
    row
      .map((similarity, index) => ({ index, similarity }))
      .filter((neighbour) => neighbour.index !== self)
      .sort((a, b) => b.similarity - a.similarity || a.index - b.index)
      .slice(0, k),
  );
}
