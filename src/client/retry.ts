import { ConnectError, Code } from "@connectrpc/connect";
import { failureFacts, isRetryable, RETRYABLE_REASONS, type FailureFacts } from "./errors.js";

/** How the SDK retries a call. */
export interface RetryOptions {
  /** Attempts in all, the first included (default 5; 1 = no retries). */
  maxAttempts: number;
  /** Wait before the first retry when the server names none, in ms (default 100); doubles each retry. */
  initialBackoffMs: number;
  /** Longest backoff, in ms (default 5000). */
  maxBackoffMs: number;
  /** A `retry-after` longer than this (ms) is not waited out: the error surfaces (default 60000). */
  maxRetryAfterMs: number;
  /** Reasons retried (default RETRYABLE_REASONS). */
  reasons: readonly string[];
  /** Told before each wait: to log or count retries. */
  onRetry?: (event: RetryEvent) => void;
}

/** One retry about to happen. */
export interface RetryEvent {
  /** The rpc, e.g. "GenerateEmbeddings". */
  method: string;
  /** The attempt that failed, from 1. */
  attempt: number;
  /** How long the SDK waits before the next attempt, in ms. */
  delayMs: number;
  facts: FailureFacts;
}

export const DEFAULT_RETRY_OPTIONS: RetryOptions = {
  maxAttempts: 5,
  initialBackoffMs: 100,
  maxBackoffMs: 5000,
  maxRetryAfterMs: 60_000,
  reasons: RETRYABLE_REASONS,
};

/**
 * The wait before retry number `retry` (from 1): the backoff
 * `initialBackoffMs * 2^(retry-1)` capped at `maxBackoffMs`, with equal jitter
 * (half fixed, half random) so clients that failed together do not come back
 * together, and never less than the server's `retry-after`.
 */
export function retryDelayMs(retry: number, facts: FailureFacts, options: RetryOptions, random: () => number = Math.random): number {
  const backoff = Math.min(options.maxBackoffMs, options.initialBackoffMs * 2 ** (retry - 1));
  const jittered = backoff / 2 + random() * (backoff / 2);
  return Math.max(facts.retryAfterMs ?? 0, jittered);
}

/**
 * Decides what follows a failed attempt: the wait in ms before the next one,
 * or undefined when the failure is final (not retryable by isRetryable, out
 * of attempts, a `retry-after` beyond `maxRetryAfterMs`, or the caller
 * aborted). Tells `onRetry` when it says retry.
 */
export function planRetry(
  method: string,
  attempt: number,
  error: unknown,
  options: RetryOptions,
  context: { idempotent: boolean; signal?: AbortSignal },
): number | undefined {
  const facts = failureFacts(error);
  const retryable =
    attempt < options.maxAttempts &&
    !context.signal?.aborted &&
    isRetryable(facts, { reasons: options.reasons, idempotent: context.idempotent }) &&
    (facts.retryAfterMs ?? 0) <= options.maxRetryAfterMs;
  if (!retryable) return undefined;
  const delayMs = retryDelayMs(attempt, facts, options);
  options.onRetry?.({ method, attempt, delayMs, facts });
  return delayMs;
}

/**
 * Runs `call` until it succeeds, fails for good, or runs out of attempts
 * (planRetry decides). An aborted `signal` stops the waiting at once (the call
 * fails CANCELED). The last failure is thrown as it came.
 */
export async function withRetries<T>(
  method: string,
  call: (attempt: number) => Promise<T>,
  options: RetryOptions,
  context: { idempotent: boolean; signal?: AbortSignal },
): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await call(attempt);
    } catch (error) {
      const delayMs = planRetry(method, attempt, error, options, context);
      if (delayMs === undefined) throw error;
      await sleep(delayMs, context.signal);
    }
  }
}

/** Waits `ms`, or rejects with a CANCELED ConnectError as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new ConnectError("the call was cancelled", Code.Canceled));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new ConnectError("the call was cancelled", Code.Canceled));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
