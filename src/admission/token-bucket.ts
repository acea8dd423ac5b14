/** A reservation's answer: granted (wait `waitMs`, then go) or refused (the tokens would be there in `waitMs`). */
export type Reservation = { granted: true; waitMs: number } | { granted: false; waitMs: number };

/**
 * A token bucket that hands out reservations, as Go's `rate.Limiter.Reserve`
 * does: a caller learns at once how long it must wait for its tokens, and a
 * caller that could not have them within its deadline is refused without
 * taking any, so a burst is sorted in one pass instead of by callers polling.
 */
export interface TokenBucket {
  /**
   * Takes `cost` tokens (capped at the capacity, so an oversized call can still
   * go once the bucket is full) if they are there within `maxWaitMs`; the
   * level may go below zero, which is how later callers queue behind earlier ones.
   */
  reserve(cost: number, maxWaitMs: number): Reservation;
  /** Puts tokens back (a cancelled reservation, an estimate that was too high); a negative amount takes more. */
  credit(amount: number): void;
  /** Tokens there now (negative while reservations are queued). */
  level(): number;
}

/** Options of a token bucket. */
export interface TokenBucketOptions {
  /** Refill per minute; also the most tokens held unless `capacity` says otherwise. */
  perMinute: number;
  /** Most tokens held (a burst); default `perMinute`, a minute's worth. */
  capacity?: number;
  /** Clock in ms (tests inject one). */
  now?: () => number;
}

/**
 * Creates a bucket refilled continuously at `perMinute` per minute up to
 * `capacity` tokens, starting full. `perMinute` 0 means unlimited: every
 * reservation is granted at once. Used per provider (gateway mode) and per
 * principal (the service's own rate limits).
 */
export function createTokenBucket(options: TokenBucketOptions): TokenBucket {
  const now = options.now ?? Date.now;
  const capacity = options.perMinute === 0 ? 0 : (options.capacity ?? options.perMinute);
  const perMs = options.perMinute / 60_000;
  let tokens = capacity;
  let updatedAt = now();
  const refill = () => {
    const at = now();
    tokens = Math.min(capacity, tokens + (at - updatedAt) * perMs);
    updatedAt = at;
  };
  return {
    reserve(cost, maxWaitMs) {
      if (capacity === 0) return { granted: true, waitMs: 0 };
      refill();
      const take = Math.min(cost, capacity);
      const waitMs = tokens >= take ? 0 : Math.ceil((take - tokens) / perMs);
      if (waitMs > maxWaitMs) return { granted: false, waitMs };
      tokens -= take;
      return { granted: true, waitMs };
    },
    credit(amount) {
      if (capacity === 0) return;
      refill();
      tokens = Math.min(capacity, tokens + amount);
    },
    level() {
      if (capacity === 0) return Number.POSITIVE_INFINITY;
      refill();
      return tokens;
    },
  };
}
