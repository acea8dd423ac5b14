/** A group of a request's inputs (by index) that runs as one inference batch. */
export type BatchPlan = number[][];

/**
 * Sorts inputs by token length (ascending, so the newest member is the longest) and cuts them into batches of at most
 * `maxBatchSize` inputs and `tokenBudget` padded tokens (rows x longest row), so
 * little compute goes to padding. Returned indices refer to the input order.
 */
export function planBatches(lengths: readonly number[], maxBatchSize: number, tokenBudget: number): BatchPlan {
  const order = lengths.map((_, index) => index).sort((a, b) => lengths[a] - lengths[b]);
  const batches: BatchPlan = [];
  let current: number[] = [];
  for (const index of order) {
    const longest = lengths[index];
    if (current.length > 0 && (current.length >= maxBatchSize || longest * (current.length + 1) > tokenBudget)) {
      batches.push(current);
      current = [];
    }
    current.push(index);
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
