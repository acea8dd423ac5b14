import { EmbedderError } from "../domain/errors.js";

/** Per-principal limits (`SUTRA_RATE_LIMIT_RPM`, `SUTRA_RATE_LIMIT_TPM`, `SUTRA_RATE_LIMIT_BURST`); 0 = no limit. */
export interface RateLimitSettings {
  requestsPerMinute: number;
  tokensPerMinute: number;
  /** Requests a principal may send at once above the steady rate; 0 = a full minute's worth (`requestsPerMinute`). */
  burst: number;
}

/** Which limit refused a request. */
export type RateLimitKind = "requests" | "tokens";

/**
 * Token buckets per principal. `admit` takes one request (and refuses while
 * the principal's token balance is spent); `charge` takes the tokens a
 * finished request used.
 */
export interface RateLimiter {
  readonly enabled: boolean;
  /** Takes one request for `principalId`, or throws RATE_LIMITED (with `retryAfterMs` and `details.limit`). */
  admit(principalId: string): void;
  /** Takes `tokens` from `principalId`'s token bucket; the balance may go below zero. */
  charge(principalId: string, tokens: number): void;
}

interface Bucket {
  level: number;
  updatedAt: number;
}

/** Above this many tracked principals, buckets that have refilled completely are forgotten. */
const SWEEP_ABOVE = 10_000;

/**
 * Creates the limiter. Each principal has a request bucket (capacity `burst`,
 * or `requestsPerMinute` when burst is 0; refills `requestsPerMinute` per
 * minute, continuously) and a token bucket (capacity and refill
 * `tokensPerMinute`). A request is admitted when a whole request is in its
 * bucket and its token balance is positive; its tokens are charged when it
 * finishes, since only tokenization knows them, so one large request may take
 * the balance below zero and the next ones wait until it refills. The wait is
 * exact: `retryAfterMs` is when the refused bucket will allow the next request.
 * `now` is injectable for tests.
 */
export function createRateLimiter(settings: RateLimitSettings, now: () => number = Date.now): RateLimiter {
  const requestCapacity = settings.burst > 0 ? settings.burst : settings.requestsPerMinute;
  const requestsPerMs = settings.requestsPerMinute / 60_000;
  const tokensPerMs = settings.tokensPerMinute / 60_000;
  const requestBuckets = new Map<string, Bucket>();
  const tokenBuckets = new Map<string, Bucket>();

  const refilled = (buckets: Map<string, Bucket>, id: string, capacity: number, perMs: number): Bucket => {
    const at = now();
    let bucket = buckets.get(id);
    if (bucket === undefined) {
      if (buckets.size >= SWEEP_ABOVE) sweep(buckets, capacity, perMs, at);
      bucket = { level: capacity, updatedAt: at };
      buckets.set(id, bucket);
      return bucket;
    }
    bucket.level = Math.min(capacity, bucket.level + (at - bucket.updatedAt) * perMs);
    bucket.updatedAt = at;
    return bucket;
  };

  const refuse = (kind: RateLimitKind, missing: number, perMs: number, limit: number): EmbedderError =>
    new EmbedderError("RATE_LIMITED", `rate limit exceeded: ${limit} ${kind} per minute`, {
      details: { limit: kind, per_minute: limit },
      retryAfterMs: Math.ceil(missing / perMs),
    });

  return {
    enabled: settings.requestsPerMinute > 0 || settings.tokensPerMinute > 0,
    admit(principalId) {
      if (settings.tokensPerMinute > 0) {
        const tokens = refilled(tokenBuckets, principalId, settings.tokensPerMinute, tokensPerMs);
        if (tokens.level <= 0) throw refuse("tokens", 1 - tokens.level, tokensPerMs, settings.tokensPerMinute);
      }
      if (settings.requestsPerMinute > 0) {
        const requests = refilled(requestBuckets, principalId, requestCapacity, requestsPerMs);
        if (requests.level < 1) throw refuse("requests", 1 - requests.level, requestsPerMs, settings.requestsPerMinute);
        requests.level -= 1;
      }
    },
    charge(principalId, tokens) {
      if (settings.tokensPerMinute <= 0 || tokens <= 0) return;
      refilled(tokenBuckets, principalId, settings.tokensPerMinute, tokensPerMs).level -= tokens;
    },
  };
}

function sweep(buckets: Map<string, Bucket>, capacity: number, perMs: number, at: number): void {
  for (const [id, bucket] of buckets) {
    if (bucket.level + (at - bucket.updatedAt) * perMs >= capacity) buckets.delete(id);
  }
}
