import { EmbedderError } from "../domain/errors.js";
import type { EmbedRequest, Embedder, EmbedStreamResult } from "../domain/types.js";
import type { Logger } from "../observability/logger.js";
import { markFailureCounted } from "../observability/count-failure.js";
import type { Metrics } from "../observability/metrics.js";
import type { RateLimiter } from "./rate-limit.js";

/** What the admission layer in front of the pipeline needs. */
export interface AdmittedEmbedderDeps {
  embedder: Embedder;
  rateLimiter: RateLimiter;
  /** Most embedding requests in the pipeline at once (`SUTRA_MAX_CONCURRENCY`); 0 = no limit. */
  maxConcurrency: number;
  logger: Logger;
  metrics: Metrics;
}

/** Wait suggested to a request turned away by the concurrency limit. */
const CONCURRENCY_RETRY_AFTER_MS = 1000;

/**
 * Wraps the pipeline with what happens around every embedding request, unary
 * or streaming, on every transport: the global concurrency limit (beyond it
 * OVERLOADED at once, as TEI's semaphore does, rather than queueing), charging
 * the tokens a request used to its principal's token-per-minute bucket, the
 * `sutra_prompt_tokens_total` counter, and one structured log line per request
 * (request id, principal, model, counts and durations; never texts or keys).
 * Every other method of the seam passes through unchanged.
 */
export function createAdmittedEmbedder(deps: AdmittedEmbedderDeps): Embedder {
  const { embedder, rateLimiter, logger, metrics } = deps;
  let inFlight = 0;

  const admitted = async <T extends EmbedStreamResult>(request: EmbedRequest, inputs: (result: T) => number, work: () => Promise<T>): Promise<T> => {
    if (deps.maxConcurrency > 0 && inFlight >= deps.maxConcurrency) {
      throw new EmbedderError("OVERLOADED", `the server is at its limit of ${deps.maxConcurrency} concurrent requests`, {
        details: { limit: deps.maxConcurrency },
        retryAfterMs: CONCURRENCY_RETRY_AFTER_MS,
      });
    }
    inFlight++;
    try {
      const result = await work();
      const principal = request.principal?.id ?? "anonymous";
      rateLimiter.charge(principal, result.promptTokens);
      metrics.promptTokensTotal.inc({ model: result.run.modelId }, result.promptTokens);
      logger.info(
        {
          requestId: request.requestId,
          principal,
          model: result.run.modelId,
          precision: result.run.precision,
          inputs: inputs(result),
          tokens: result.promptTokens,
          truncated: result.truncatedInputs.length,
          totalMs: round(result.timings.totalMs),
          tokenizationMs: round(result.timings.tokenizationMs),
          queueMs: round(result.timings.queueMs),
          inferenceMs: round(result.timings.inferenceMs),
        },
        "embedded",
      );
      return result;
    } catch (error) {
      // The pipeline counted it in sutra_failures_total, so the transport must not count it again;
      // SHUTTING_DOWN is the exception: the pipeline refuses it before it counts anything.
      if (!(error instanceof EmbedderError && error.reason === "SHUTTING_DOWN")) markFailureCounted(error);
      throw error;
    } finally {
      inFlight--;
    }
  };

  return {
    ...embedder,
    embed: (request, signal) => admitted(request, (result) => result.embeddings.length, () => embedder.embed(request, signal)),
    embedStream: (request, onItem, signal) =>
      admitted(request, () => (request.tokenIds ?? request.texts).length, () => embedder.embedStream(request, onItem, signal)),
  };
}

function round(milliseconds: number): number {
  return Math.round(milliseconds * 100) / 100;
}
