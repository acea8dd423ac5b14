import { EmbedderError } from "../domain/errors.js";
import { createTokenBucket, type TokenBucket } from "./token-bucket.js";

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

/** Above this many tracked principals, buckets that have refilled completely are forgotten. */
const SWEEP_ABOVE = 10_000;

/**
 * Creates the limiter. Each principal has a request bucket (capacity `burst`,
 * or `requestsPerMinute` when burst is 0; refills `requestsPerMinute` per
 * minute, continuously) and a token bucket (capacity and refill
 * `tokensPerMinute`), both createTokenBucket. A request is admitted when a
 * whole request is in its bucket and its token balance is positive; its tokens
 * are charged when it finishes, since only tokenization knows them, so one
 * large request may take the balance below zero and the next ones wait until
 * it refills. The wait is exact: `retryAfterMs` is when the refused bucket will
 * allow the next request. `now` is injectable for tests.
 */
export function createRateLimiter(settings: RateLimitSettings, now: () => number = Date.now): RateLimiter {
  const requestCapacity = settings.burst > 0 ? settings.burst : settings.requestsPerMinute;
  const requestBuckets = new Map<string, TokenBucket>();
  const tokenBuckets = new Map<string, TokenBucket>();

  const bucketOf = (buckets: Map<string, TokenBucket>, id: string, perMinute: number, capacity: number): TokenBucket => {
    let bucket = buckets.get(id);
    if (bucket === undefined) {
      if (buckets.size >= SWEEP_ABOVE) {
        for (const [known, full] of buckets) if (full.level() >= capacity) buckets.delete(known);
      }
      bucket = createTokenBucket({ perMinute, capacity, now });
      buckets.set(id, bucket);
    }
    return bucket;
  };

  const refuse = (kind: RateLimitKind, retryAfterMs: number, limit: number): EmbedderError =>
    new EmbedderError("RATE_LIMITED", `rate limit exceeded: ${limit} ${kind} per minute`, {
      details: { limit: kind, per_minute: limit },
      retryAfterMs,
    });

  return {
    enabled: settings.requestsPerMinute > 0 || settings.tokensPerMinute > 0,
    admit(principalId) {
      if (settings.tokensPerMinute > 0) {
        const balance = bucketOf(tokenBuckets, principalId, settings.tokensPerMinute, settings.tokensPerMinute).level();
        if (balance <= 0) throw refuse("tokens", Math.ceil((1 - balance) / (settings.tokensPerMinute / 60_000)), settings.tokensPerMinute);
      }
      if (settings.requestsPerMinute > 0) {
        const reservation = bucketOf(requestBuckets, principalId, settings.requestsPerMinute, requestCapacity).reserve(1, 0);
        if (!reservation.granted) throw refuse("requests", reservation.waitMs, settings.requestsPerMinute);
      }
    },
    charge(principalId, tokens) {
      if (settings.tokensPerMinute <= 0 || tokens <= 0) return;
      bucketOf(tokenBuckets, principalId, settings.tokensPerMinute, settings.tokensPerMinute).credit(-tokens);
    },
  };
}
