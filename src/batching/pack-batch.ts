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
  /** Most padded tokens per batch (items x longest item, rounded up to `sequenceAlignment`). */
  tokenBudget: number;
  /** Padded lengths are multiples of this (default 1). */
  sequenceAlignment?: number;
}

/**
 * The cost of running one item padded to `length` tokens, in token units: linear layers cost
 * each token alike, attention adds a term in the square of the length. The quadratic scale
 * is that of a MiniLM-sized transformer (attention matches the linear layers near six times
 * the hidden width); for other models it only weighs long padding a little more.
 */
export function paddedCost(length: number): number {
  return length + (length * length) / ATTENTION_SCALE;
}
const ATTENTION_SCALE = 2304;

/**
 * What one batch costs besides its tokens (the hand-over to a worker, the session call, matrix
 * products too small to keep the cores busy), in token units: why two half-full batches are
 * slower than a full one.
 */
const BATCH_OVERHEAD = 32;

/**
 * How many of the oldest waiting items packing looks at: sixteen full batches, which is
 * all of them but under a deep backlog, where this many already pack tightly.
 */
const LOOKAHEAD_BATCHES = 16;

/**
 * Chooses the next batch among `eligible` (non-empty, in arrival order): items of one key,
 * sorted by length, within `limits` and each request's `cap`.
 *
 * Each key's waiting items (the oldest 16 batches' worth) are sorted by length and cut into
 * the windows that cost least in all: padded work (`paddedCost` of the longest, per item)
 * plus a fixed cost per batch. Of those windows the one doing the most content work per
 * unit of cost runs now; the others wait, and may fill with items that arrive meanwhile.
 * With `forceOldest` (the batcher sets it once the oldest item was passed over a bounded
 * number of times, so nothing starves) the window holding the oldest item runs instead.
 * A pure function of its arguments; the batcher removes what it returns from its queue.
 */
export function packBatch<Entry extends PackableEntry>(eligible: Entry[], limits: PackLimits, forceOldest = false): Entry[] {
  const considered = eligible.slice(0, LOOKAHEAD_BATCHES * limits.maxBatchSize);
  const oldest = considered[0];
  const groups = new Map<string, Entry[]>();
  for (const entry of considered) {
    const group = groups.get(entry.item.key);
    if (group === undefined) groups.set(entry.item.key, [entry]);
    else group.push(entry);
  }
  let best: { window: Entry[]; score: number } | undefined;
  for (const group of groups.values()) {
    group.sort((a, b) => a.length - b.length || a.order - b.order);
    for (const window of cheapestWindows(group, limits)) {
      const holdsOldest = window.includes(oldest);
      if (forceOldest) {
        if (holdsOldest) return withinCaps(window);
        continue;
      }
      const content = window.reduce((sum, entry) => sum + paddedCost(entry.length), 0);
      const score = content / (window.length * paddedCost(paddedLength(window[window.length - 1].length, limits)) + BATCH_OVERHEAD);
      if (best === undefined || score > best.score || (score === best.score && holdsOldest)) best = { window, score };
    }
  }
  return withinCaps(best!.window);
}

/**
 * Cuts `sorted` (items sorted by length) into consecutive windows within `limits` whose cost
 * (each window: its size x `paddedCost` of its longest, plus BATCH_OVERHEAD) is least in all.
 * Dynamic programming over the cut points: cost[j] is the least cost of the first j items.
 */
function cheapestWindows<Entry extends PackableEntry>(sorted: Entry[], limits: PackLimits): Entry[][] {
  const cost = new Float64Array(sorted.length + 1);
  const start = new Int32Array(sorted.length + 1);
  for (let end = 1; end <= sorted.length; end++) {
    const longest = paddedLength(sorted[end - 1].length, limits);
    const most = Math.max(1, Math.min(limits.maxBatchSize, Math.floor(limits.tokenBudget / longest)));
    const padded = paddedCost(longest);
    cost[end] = Infinity;
    for (let first = end - 1; first >= Math.max(0, end - most); first--) {
      const total = cost[first] + (end - first) * padded + BATCH_OVERHEAD;
      if (total < cost[end]) {
        cost[end] = total;
        start[end] = first;
      }
    }
  }
  const windows: Entry[][] = [];
  for (let end = sorted.length; end > 0; end = start[end]) windows.push(sorted.slice(start[end], end));
  return windows;
}

/** The length a batch whose longest item has `length` tokens is padded to. */
function paddedLength(length: number, limits: PackLimits): number {
  const alignment = limits.sequenceAlignment ?? 1;
  return Math.ceil(Math.max(1, length) / alignment) * alignment;
}

/** `window` less the items of requests past their cap (kept for a later batch; the shorter ones go first). */
function withinCaps<Entry extends PackableEntry>(window: Entry[]): Entry[] {
  const perRequest = new Map<Entry["request"], number>();
  return window.filter((entry) => {
    const taken = perRequest.get(entry.request) ?? 0;
    if (taken >= entry.request.cap) return false;
    perRequest.set(entry.request, taken + 1);
    return true;
  });
}
