import type { Pooling } from "../models/manifest.js";

/**
 * Pools token vectors [batch, seq, hidden] into one vector per row, honouring the
 * attention mask so padding never leaks into a result: `mean` averages real
 * tokens, `cls` takes the first real token, `last-token` the last real token
 * (works with left and right padding). `none` expects [batch, hidden] already.
 */
export function poolTokens(
  hidden: Float32Array,
  dims: readonly number[],
  mask: BigInt64Array,
  pooling: Pooling,
): { embeddings: Float32Array; batch: number; dimensions: number } {
  if (pooling === "none") {
    if (dims.length !== 2) throw new Error(`expected a pooled [batch, hidden] output, got [${dims.join(",")}]`);
    return { embeddings: hidden, batch: dims[0], dimensions: dims[1] };
  }
  if (dims.length !== 3) throw new Error(`expected [batch, seq, hidden] token output, got [${dims.join(",")}]`);
  const [batch, sequence, size] = dims;
  const out = new Float32Array(batch * size);
  for (let row = 0; row < batch; row++) {
    const maskBase = row * sequence;
    let first = -1;
    let last = -1;
    let count = 0;
    for (let position = 0; position < sequence; position++) {
      if (mask[maskBase + position] !== 0n) {
        if (first < 0) first = position;
        last = position;
        count++;
      }
    }
    const target = out.subarray(row * size, (row + 1) * size);
    if (count === 0) continue;
    if (pooling === "mean") {
      const sums = new Float64Array(size);
      for (let position = 0; position < sequence; position++) {
        if (mask[maskBase + position] === 0n) continue;
        const base = (maskBase + position) * size;
        for (let index = 0; index < size; index++) sums[index] += hidden[base + index];
      }
      for (let index = 0; index < size; index++) target[index] = sums[index] / count;
    } else {
      const position = pooling === "cls" ? first : last;
      const base = (maskBase + position) * size;
      target.set(hidden.subarray(base, base + size));
    }
  }
  return { embeddings: out, batch, dimensions: size };
}
