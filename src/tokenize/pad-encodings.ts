import type { Encoding, PaddedBatch, PaddingSide } from "./tokenizer.js";

/**
 * Pads encodings into one `[batchSize, sequenceLength]` int64 batch, `sequenceLength` being
 * the longest encoding (at least 1, so an all-empty batch is still a valid tensor) rounded
 * up to a multiple of `alignment`.
 * Padding positions get `padId`, mask 0 and position 0; real tokens get mask 1 and
 * positions 0..n-1 counted from the row's first real token, on either side.
 */
export function padEncodings(encodings: readonly Encoding[], side: PaddingSide, padId: number, alignment = 1): PaddedBatch {
  const batchSize = encodings.length;
  let longest = 1;
  for (const encoding of encodings) longest = Math.max(longest, encoding.ids.length);
  const sequenceLength = Math.ceil(longest / alignment) * alignment;
  const size = batchSize * sequenceLength;
  const inputIds = new BigInt64Array(size);
  const attentionMask = new BigInt64Array(size);
  const positionIds = new BigInt64Array(size);
  if (padId !== 0) inputIds.fill(BigInt(padId));
  encodings.forEach(({ ids }, row) => {
    const first = row * sequenceLength + (side === "left" ? sequenceLength - ids.length : 0);
    for (let position = 0; position < ids.length; position++) {
      inputIds[first + position] = BigInt(ids[position]);
      attentionMask[first + position] = 1n;
      positionIds[first + position] = BigInt(position);
    }
  });
  return { inputIds, attentionMask, positionIds, batchSize, sequenceLength };
}
