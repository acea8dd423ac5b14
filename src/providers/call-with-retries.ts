import { performance } from "node:perf_hooks";
import { ERROR_TABLE } from "../domain/error-table.js";
import { EmbedderError } from "../domain/errors.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { CircuitBreaker } from "./circuit-breaker.js";
import type { ProviderConfig, ProviderModel } from "./provider-config.js";
import type { ProviderLimiter } from "./provider-limiter.js";
import { backoffDelayMs } from "./retry-policy.js";
import { UpstreamFailure, type UpstreamAnswer, type UpstreamClient } from "./upstream-client.js";

/** One upstream provider as the gateway holds it: its settings, its client, and the limiter and breaker every call passes. */
export interface UpstreamProvider {
  config: ProviderConfig;
  client: UpstreamClient;
  limiter: ProviderLimiter;
  breaker: CircuitBreaker;
}

/** What calling upstream needs from the gateway; `sleep` and `random` are injected in tests. */
export interface UpstreamDeps {
  metrics: Metrics;
  logger: Logger;
  /** Waits between retries; rejects when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Jitter of the backoff, in [0, 1). */
  random(): number;
}

/** One batch of texts for one upstream call (already split to the provider's max batch). */
export interface UpstreamBatch {
  model: ProviderModel;
  texts: string[];
  /** Reduced size asked of the upstream; undefined = the model's own. */
  dimensions: number | undefined;
  /** The request is the half-open breaker's probe: the breaker lets it through. */
  probing: boolean;
  signal: AbortSignal;
}

/** Upstream 4xx statuses that mean the request itself was refused (no retry, no breaker failure): INVALID_ARGUMENT. */
const REQUEST_REFUSED = new Set([400, 413, 422]);

/**
 * The error of a provider whose breaker is open (UPSTREAM_UNAVAILABLE, with
 * the cooldown left as the wait), counted as a `breaker_open` failure. Both
 * the gateway (before a request starts) and each attempt here ask for it, so
 * the client sees one answer whichever turned the request away.
 */
export function breakerOpenError(provider: UpstreamProvider, model: string, metrics: Metrics): EmbedderError {
  const { name } = provider.config;
  metrics.countProviderFailure(name, model, "breaker_open");
  return new EmbedderError("UPSTREAM_UNAVAILABLE", `provider ${name} is unavailable (circuit breaker open)`, {
    details: { provider: name, breaker: "open" },
    retryAfterMs: Math.max(1000, provider.breaker.snapshot().retryInMs),
  });
}

/**
 * One batch on one provider, with retries; resolves with the answer and the
 * longest the calls waited for a limiter slot. Each attempt takes a limiter
 * slot, passes the breaker, and checks the answer (one vector per text, of
 * the expected size; else UPSTREAM_BAD_RESPONSE, which counts against the
 * breaker). A failed attempt is retried while its reason is `retryable` in the
 * error table, attempts are left and the wait (the upstream's Retry-After,
 * else the backoff) is at most backoff.max_ms. An upstream's answer below 500
 * other than 429 (a bad key, an unknown model) maps to UPSTREAM_UNAVAILABLE,
 * retryable for the client and for fallback, but the same upstream would
 * answer it the same at once, so it is not retried here. 429s and refusals of
 * the request itself do not count against the breaker.
 */
export async function callWithRetries(provider: UpstreamProvider, batch: UpstreamBatch, deps: UpstreamDeps): Promise<{ answer: UpstreamAnswer; waitedMs: number }> {
  const { metrics, logger } = deps;
  const { name, retries, backoff } = provider.config;
  const { model, texts, dimensions, signal } = batch;
  const expectedDimensions = dimensions ?? model.dimensions;
  let waitedMs = 0;
  for (let attempt = 0; ; attempt++) {
    if (!provider.breaker.allows(batch.probing)) throw breakerOpenError(provider, model.id, metrics);
    let slot;
    try {
      slot = await provider.limiter.acquire(texts, signal);
    } catch (error) {
      if (error instanceof EmbedderError && error.reason === "RATE_LIMITED") {
        metrics.countProviderFailure(name, model.id, "no_slot");
      }
      throw error;
    }
    waitedMs += slot.waitedMs;
    const started = performance.now();
    let answer: UpstreamAnswer;
    try {
      answer = await provider.client.embed({ texts, model: model.id, ...(dimensions === undefined ? {} : { dimensions }), signal });
      slot.release(answer.promptTokens);
    } catch (error) {
      slot.release();
      metrics.upstreamSeconds.observe({ provider: name, outcome: "error" }, (performance.now() - started) / 1000);
      if (signal.aborted || !(error instanceof UpstreamFailure)) throw error;
      const reason = failureReason(error);
      metrics.countProviderFailure(name, model.id, reason);
      const refused = error.status !== undefined && REQUEST_REFUSED.has(error.status);
      if (!refused && error.status !== 429) provider.breaker.recordFailure();
      const failure = toEmbedderError(name, error, attempt + 1);
      const sameAnswerAgain = error.kind === "http" && error.status !== 429 && (error.status ?? 0) < 500;
      const delayMs = error.retryAfterMs ?? backoffDelayMs(attempt, backoff, deps.random);
      const retrying = ERROR_TABLE[failure.reason].retryable && !sameAnswerAgain && attempt < retries && delayMs <= Math.max(backoff.maxMs, backoff.baseMs);
      logger.warn(
        { provider: name, model: model.id, attempt: attempt + 1, reason, detail: error.detail, ...(retrying ? { retryInMs: delayMs } : {}) },
        `provider ${name}: upstream call failed${retrying ? "; retrying" : ""}`,
      );
      if (!retrying) throw failure;
      await deps.sleep(delayMs, signal);
      continue;
    }
    metrics.upstreamSeconds.observe({ provider: name, outcome: "ok" }, (performance.now() - started) / 1000);
    const wrongSize = answer.vectors.findIndex((vector) => vector.length !== expectedDimensions);
    if (answer.vectors.length !== texts.length || wrongSize !== -1) {
      metrics.countProviderFailure(name, model.id, "bad_response");
      provider.breaker.recordFailure();
      const problem: Record<string, number> = answer.vectors.length !== texts.length
        ? { expected_count: texts.length, count: answer.vectors.length }
        : { expected_dimensions: expectedDimensions, dimensions: answer.vectors[wrongSize].length, index: wrongSize };
      logger.warn({ provider: name, model: model.id, ...problem }, `provider ${name}: wrong number or size of vectors`);
      throw new EmbedderError(
        "UPSTREAM_BAD_RESPONSE",
        answer.vectors.length !== texts.length
          ? `provider ${name} returned ${answer.vectors.length} vectors for ${texts.length} texts`
          : `provider ${name} returned a vector of ${answer.vectors[wrongSize].length} dimensions; ${model.id} has ${expectedDimensions}`,
        { details: { provider: name, model: model.id, ...problem } },
      );
    }
    provider.breaker.recordSuccess();
    return { answer, waitedMs };
  }
}

/** The `reason` label of a failed call in `sutra_provider_failures_total`. */
function failureReason(failure: UpstreamFailure): string {
  if (failure.kind !== "http") return failure.kind;
  if (failure.status === 429) return "rate_limited";
  return (failure.status ?? 500) >= 500 ? "server_error" : "client_error";
}

/** The client's error for a failed call: RATE_LIMITED (429), INVALID_ARGUMENT (the request refused), UPSTREAM_BAD_RESPONSE, else UPSTREAM_UNAVAILABLE. */
function toEmbedderError(provider: string, failure: UpstreamFailure, attempts: number): EmbedderError {
  const details = { provider, attempts, ...(failure.status === undefined ? {} : { upstream_status: failure.status }) };
  if (failure.kind === "bad_response") {
    return new EmbedderError("UPSTREAM_BAD_RESPONSE", `provider ${provider} sent an answer that is not a valid embeddings response`, { details, cause: failure });
  }
  if (failure.status === 429) {
    return new EmbedderError("RATE_LIMITED", `provider ${provider} is rate limiting requests (HTTP 429)`, {
      details, retryAfterMs: failure.retryAfterMs ?? 1000, cause: failure,
    });
  }
  if (failure.status !== undefined && REQUEST_REFUSED.has(failure.status)) {
    return new EmbedderError("INVALID_ARGUMENT", `provider ${provider} refused the request (HTTP ${failure.status})`, { details, cause: failure });
  }
  const what = failure.kind === "http" ? `answered HTTP ${failure.status}` : failure.kind === "timeout" ? "did not answer in time" : "could not be reached";
  return new EmbedderError("UPSTREAM_UNAVAILABLE", `provider ${provider} ${what}`, {
    details, ...(failure.retryAfterMs === undefined ? {} : { retryAfterMs: failure.retryAfterMs }), cause: failure,
  });
}
