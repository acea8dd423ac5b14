import type { EmbedRequest, EmbedResult } from "../domain/types.js";
import type { Logger } from "../observability/logger.js";

/** Writes the access line of an answered embedding request. */
export type AccessLog = (request: EmbedRequest, result: EmbedResult) => void;

/** At `info`, at most one access line per this many milliseconds; at `debug`, every request has one. */
const INFO_SAMPLE_MS = 1000;

function round(milliseconds: number): number {
  return Math.round(milliseconds * 100) / 100;
}

/**
 * The access log, kept cheap on the hot path: one `embedded` line (request id,
 * principal, model, precision, counts and stage durations; never texts or
 * keys) for every request when the level is `debug`, and otherwise for at most
 * one request per second at `info`, so a quiet server logs each request and a
 * busy one a sample. The line is built only when it is written.
 */
export function createAccessLog(logger: Logger): AccessLog {
  let lastInfoAt = Number.NEGATIVE_INFINITY;
  return (request, result) => {
    const debug = logger.isLevelEnabled("debug");
    const now = Date.now();
    if (!debug && (now - lastInfoAt < INFO_SAMPLE_MS || !logger.isLevelEnabled("info"))) return;
    if (!debug) lastInfoAt = now;
    const line = {
      requestId: request.requestId,
      principal: request.principal?.id ?? "anonymous",
      model: result.run.modelId,
      precision: result.run.precision,
      inputs: request.texts.length,
      tokens: result.promptTokens,
      truncated: result.truncatedInputs.length,
      totalMs: round(result.timings.totalMs),
      tokenizationMs: round(result.timings.tokenizationMs),
      queueMs: round(result.timings.queueMs),
      inferenceMs: round(result.timings.inferenceMs),
    };
    if (debug) logger.debug(line, "embedded");
    else logger.info(line, "embedded");
  };
}
