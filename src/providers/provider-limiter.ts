import { setTimeout as sleepFor } from "node:timers/promises";
import { EmbedderError } from "../domain/errors.js";
import { createTokenBucket } from "../admission/token-bucket.js";

/** A slot for one upstream call; release it when the call is over. */
export interface ProviderSlot {
  /** Frees the concurrency slot; with the tokens the provider reported, corrects the TPM bucket and the estimate. */
  release(reportedTokens?: number): void;
  /** Milliseconds the call waited for its slot. */
  waitedMs: number;
}

/** Client-side limits of one provider: RPM and TPM buckets and a concurrency cap. */
export interface ProviderLimiter {
  /**
   * Waits for one request's worth of RPM, the texts' estimated tokens of TPM
   * and a concurrency slot. A call that cannot have them within the provider's
   * `timeout_ms` fails with RATE_LIMITED and a Retry-After: at once when the
   * buckets already say so, otherwise when the deadline passes. Aborting
   * `signal` gives back what was taken and rejects with the signal's reason.
   */
  acquire(texts: readonly string[], signal?: AbortSignal): Promise<ProviderSlot>;
  /** Tokens the texts are estimated to take: chars/4 until the provider has reported usage, then its observed ratio. */
  estimateTokens(texts: readonly string[]): number;
}

/** Options of a provider limiter. */
export interface ProviderLimiterOptions {
  provider: string;
  rpm: number;
  tpm: number;
  concurrency: number;
  /** Longest wait for a slot. */
  timeoutMs: number;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Tokens per character assumed before a provider reports usage (the common chars/4 rule). */
const DEFAULT_TOKENS_PER_CHAR = 0.25;
/** Weight of the newest usage report in the running tokens-per-char estimate. */
const USAGE_WEIGHT = 0.2;
/** Retry-After suggested when the concurrency cap, not a bucket, kept a call waiting too long. */
const CONCURRENCY_RETRY_AFTER_MS = 1000;

/** Creates the limiter of one provider. */
export function createProviderLimiter(options: ProviderLimiterOptions): ProviderLimiter {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number, signal?: AbortSignal) => sleepFor(ms, undefined, { signal }));
  const requests = createTokenBucket({ perMinute: options.rpm, now });
  const tokens = createTokenBucket({ perMinute: options.tpm, now });
  let tokensPerChar = DEFAULT_TOKENS_PER_CHAR;
  let inFlight = 0;
  const waiters: Array<{ grant: () => void }> = [];

  const characters = (texts: readonly string[]) => texts.reduce((sum, text) => sum + text.length, 0);
  const estimateTokens = (texts: readonly string[]) => Math.max(1, Math.ceil(characters(texts) * tokensPerChar));
  const rateLimited = (waitMs: number, why: string) =>
    new EmbedderError("RATE_LIMITED", `provider ${options.provider}: no upstream slot within ${options.timeoutMs} ms (${why})`, {
      details: { provider: options.provider, limit: why },
      retryAfterMs: Math.max(1, waitMs),
    });

  const releaseOne = () => {
    const next = waiters.shift();
    if (next) next.grant();
    else inFlight--;
  };

  /** A concurrency slot within `waitMs`, FIFO. */
  const concurrencySlot = (waitMs: number, signal?: AbortSignal): Promise<void> => {
    if (inFlight < options.concurrency) {
      inFlight++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        grant: () => {
          settle();
          resolve();
        },
      };
      const timer = setTimeout(() => {
        settle();
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(rateLimited(CONCURRENCY_RETRY_AFTER_MS, "concurrency"));
      }, Math.max(0, waitMs));
      const onAbort = () => {
        settle();
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(signal?.reason);
      };
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      waiters.push(waiter);
    });
  };

  return {
    estimateTokens,
    async acquire(texts, signal) {
      signal?.throwIfAborted();
      const started = now();
      const estimate = estimateTokens(texts);
      const request = requests.reserve(1, options.timeoutMs);
      if (!request.granted) throw rateLimited(request.waitMs, "rpm");
      const budget = tokens.reserve(estimate, options.timeoutMs);
      if (!budget.granted) {
        requests.credit(1);
        throw rateLimited(budget.waitMs, "tpm");
      }
      const giveBack = () => {
        requests.credit(1);
        tokens.credit(estimate);
      };
      try {
        const waitMs = Math.max(request.waitMs, budget.waitMs);
        if (waitMs > 0) await sleep(waitMs, signal);
        await concurrencySlot(options.timeoutMs - (now() - started), signal);
      } catch (error) {
        giveBack();
        throw error;
      }
      let released = false;
      return {
        waitedMs: now() - started,
        release(reportedTokens) {
          if (released) return;
          released = true;
          releaseOne();
          if (reportedTokens !== undefined && reportedTokens > 0) {
            tokens.credit(estimate - reportedTokens);
            const chars = characters(texts);
            if (chars > 0) tokensPerChar = (1 - USAGE_WEIGHT) * tokensPerChar + USAGE_WEIGHT * (reportedTokens / chars);
          }
        },
      };
    },
  };
}
