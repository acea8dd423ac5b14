/** What packing reads of a waiting item. */
export interface PackableEntry {
  item: { key: string };
  /** Token count of the item. */
  length: number;
  /** Arrival order, unique: the lowest is the oldest. */
  order: number;
  /** The submission the item belongs to; `cap` is the most of its items one batch may hold. */
  request: { cap: number };
}

/** The bounds of one batch. */
export interface PackLimits {
  /** Most items per batch. */
  maxBatchSize: number;
  /** Most padded tokens per batch (items x longest item). */
  tokenBudget: number;
}

/**
 * Chooses the next batch among `eligible` (non-empty): the oldest entry, and around it the
 * entries of the same key with the closest token lengths, taken one at a time (the closer
 * of the next shorter and the next longer first) while the batch stays within `limits` and
 * each request within its `cap`. Returns them sorted by length (arrival order among equal
 * lengths). A pure function of its arguments, so the packing policy is changed and tested
 * here alone; the batcher removes what it returns from its queue.
 */
export function packBatch<Entry extends PackableEntry>(eligible: Entry[], limits: PackLimits): Entry[] {
  const oldest = eligible.reduce((best, entry) => (entry.order < best.order ? entry : best));
  const candidates = eligible
    .filter((entry) => entry.item.key === oldest.item.key)
    .sort((a, b) => a.length - b.length || a.order - b.order);
  let low = candidates.indexOf(oldest);
  let high = low;
  const perRequest = new Map<Entry["request"], number>([[oldest.request, 1]]);
  const distance = (entry: Entry) => Math.abs(entry.length - oldest.length);
  const canAdd = (entry: Entry) => {
    const size = high - low + 2;
    return size <= limits.maxBatchSize &&
      Math.max(candidates[high].length, entry.length) * size <= limits.tokenBudget &&
      (perRequest.get(entry.request) ?? 0) < entry.request.cap;
  };
  for (;;) {
    const below = candidates[low - 1];
    const above = candidates[high + 1];
    const next = [below, above]
      .filter((entry): entry is Entry => entry !== undefined && canAdd(entry))
      .sort((a, b) => distance(a) - distance(b))[0];
    if (!next) break;
    if (next === below) low--;
    else high++;
    perRequest.set(next.request, (perRequest.get(next.request) ?? 0) + 1);
  }
  return candidates.slice(low, high + 1);
}
