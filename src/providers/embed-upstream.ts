import { performance } from "node:perf_hooks";
import { EmbedderError } from "../domain/errors.js";
import type { EmbedRequest, EmbedResult, HardwareProfileName } from "../domain/types.js";
import { encodeEmbedding, normalizeInPlace } from "../postprocess/encode-embedding.js";
import { breakerOpenError, callWithRetries, type UpstreamDeps, type UpstreamProvider } from "./call-with-retries.js";
import type { ProviderModel } from "./provider-config.js";

/** The request's side of an upstream run: its cancellation and the server's hardware profile, reported in the result. */
export interface UpstreamRun {
  signal?: AbortSignal;
  hardwareProfile: HardwareProfileName;
}

/**
 * A request on one upstream provider and one of its models: `texts` (the
 * prompts already applied) split to the provider's max batch, at most
 * `concurrency` batches in flight, each through callWithRetries, reassembled
 * in order and encoded as the request asks. The first failed batch stops the
 * others and is the error (CANCELLED when the request's signal aborted).
 * INVALID_DIMENSIONS when the request asks a size the model cannot give
 * (only openai-compatible providers shorten vectors); UPSTREAM_UNAVAILABLE
 * when the breaker turns the request away. No texts (a stream checking its
 * settings) sends nothing upstream.
 */
export async function embedUpstream(
  provider: UpstreamProvider,
  model: ProviderModel,
  texts: string[],
  request: EmbedRequest,
  run: UpstreamRun,
  deps: UpstreamDeps,
): Promise<EmbedResult> {
  const started = performance.now();
  const { name, type, maxBatch, concurrency } = provider.config;
  if (request.dimensions !== 0 && (request.dimensions > model.dimensions || (type !== "openai-compatible" && request.dimensions !== model.dimensions))) {
    throw new EmbedderError("INVALID_DIMENSIONS", `provider ${name} serves ${model.id} at ${model.dimensions} dimensions only`, {
      details: { dimensions: request.dimensions, supported: [model.dimensions] },
    });
  }
  const dimensions = request.dimensions !== 0 && request.dimensions !== model.dimensions ? request.dimensions : undefined;
  const result = (embeddings: EmbedResult["embeddings"], promptTokens: number, queueMs: number): EmbedResult => {
    const totalMs = performance.now() - started;
    return {
      embeddings,
      run: { modelId: model.id, name: model.id, dimensions: dimensions ?? model.dimensions, qualityScore: 0, sizeMb: 0, precision: "remote", executionProvider: type, provider: name },
      timings: { totalMs, tokenizationMs: 0, queueMs, inferenceMs: Math.max(0, totalMs - queueMs) },
      promptTokens,
      truncatedInputs: [],
      hardwareProfile: run.hardwareProfile,
      dimensionsPolicy: dimensions === undefined ? "native" : "upstream",
    };
  };
  if (texts.length === 0) return result([], 0, 0);
  const admission = provider.breaker.admit();
  if (admission === "reject") throw breakerOpenError(provider, model.id, deps.metrics);
  const probing = admission === "probe";
  const stop = new AbortController();
  const onAbort = () => stop.abort(run.signal?.reason);
  run.signal?.addEventListener("abort", onAbort, { once: true });
  if (run.signal?.aborted) onAbort();
  const vectors = new Array<Float32Array>(texts.length);
  let reported = 0;
  let allReported = true;
  let queueMs = 0;
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < texts.length && failure === undefined) {
      const offset = next;
      next += maxBatch;
      try {
        const batch = { model, texts: texts.slice(offset, offset + maxBatch), dimensions, probing, signal: stop.signal };
        const { answer, waitedMs } = await callWithRetries(provider, batch, deps);
        answer.vectors.forEach((vector, index) => {
          vectors[offset + index] = vector;
        });
        if (answer.promptTokens === undefined) allReported = false;
        else reported += answer.promptTokens;
        queueMs = Math.max(queueMs, waitedMs);
      } catch (error) {
        if (failure === undefined) {
          failure = error;
          stop.abort(error);
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, Math.ceil(texts.length / maxBatch)) }, worker));
  } finally {
    run.signal?.removeEventListener("abort", onAbort);
    if (probing) provider.breaker.endProbe();
  }
  if (failure !== undefined) {
    if (run.signal?.aborted) throw new EmbedderError("CANCELLED", "the request was cancelled", { cause: failure });
    throw failure;
  }
  const embeddings = vectors.map((vector) => encodeEmbedding(request.normalize ? normalizeInPlace(vector) : vector, request.embeddingTypes));
  const answered = result(embeddings, allReported ? reported : provider.limiter.estimateTokens(texts), queueMs);
  deps.metrics.countEmbeddings(`${name}:${model.id}`, "remote", texts.length);
  deps.metrics.stageSeconds.observe({ stage: "total" }, answered.timings.totalMs / 1000);
  return answered;
}
