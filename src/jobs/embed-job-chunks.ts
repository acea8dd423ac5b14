import { createEmbedRequest } from "../domain/embed-request.js";
import { EmbedderError } from "../domain/errors.js";
import type { EmbedRequest, EmbedResult } from "../domain/types.js";
import { fromStore } from "./from-store.js";
import type { StoredDocument, StoredJob } from "./job-store.js";
import type { JobDeps } from "./job-service-deps.js";
import { withRetry } from "./with-retry.js";

/** Failures by which the pipeline turns a batch away before any of it runs: the batch was not handed to inference. */
const REFUSED = new Set(["OVERLOADED", "MODEL_NOT_READY", "SHUTTING_DOWN"]);

/**
 * Embeds the chunks of `job` without an embedding, in document order, one
 * group of `groupSize` at a time: each group goes to the pipeline at
 * `background` priority (so it yields to online requests), retried on
 * transient failures, and its embeddings and the job's counts are committed
 * together, so a killed process resumes after the last committed group.
 * True when no chunk is left; false when stopped on the way or when the job
 * left `running` (cancelled).
 */
export async function embedJobChunks(deps: JobDeps, job: StoredJob, groupSize: number, signal: AbortSignal): Promise<boolean> {
  const { store, logger, now } = deps;
  let cursor = { documentIndex: -1, chunkIndex: -1 };
  let document: StoredDocument | undefined;
  const textOf = (documentIndex: number): string => {
    if (document?.index !== documentIndex) document = store.document(job.id, documentIndex);
    if (document === undefined) throw new EmbedderError("JOB_NOT_FOUND", `job ${job.id} was deleted while it ran`);
    return document.text;
  };
  for (let group = 0; ; group++) {
    if (signal.aborted) return false;
    const pending = store.pendingChunks(job.id, cursor, groupSize);
    if (pending.length === 0) return true;
    const texts = pending.map((chunk) => textOf(chunk.documentIndex).slice(chunk.start, chunk.end));
    const request = createEmbedRequest({
      ...job.options,
      requestId: `job-${job.id}-${job.resumes}-${group}`,
      texts,
      truncate: "end",
      embeddingTypes: ["float"],
      priority: "background",
    });
    const result = await withRetry(() => handOver(deps, job.id, request, signal), signal, job.id, logger);
    if (result === undefined) return false;
    const committed = store.commitResults(job.id, pending.map((chunk, index) => ({
      documentIndex: chunk.documentIndex,
      chunkIndex: chunk.chunkIndex,
      embedding: result.embeddings[index].float ?? new Float32Array(0),
      tokens: chunk.tokens,
    })), now());
    if (committed === 0 && fromStore(() => store.getJob(job.id))?.status !== "running") return false;
    const last = pending[pending.length - 1];
    cursor = { documentIndex: last.documentIndex, chunkIndex: last.chunkIndex };
  }
}

/**
 * Hands one batch to inference. Its size is added to `dispatched_chunks`
 * first (committed, so a kill cannot lose it), only while the job runs and is
 * not stopped (else nothing is counted or sent and the answer is undefined),
 * and taken back when the pipeline turned the batch away before running any
 * of it (REFUSED): the count holds only batches inference received.
 */
async function handOver(deps: Pick<JobDeps, "store" | "embedder" | "onChunksEmbedded" | "now">, jobId: string, request: EmbedRequest, signal: AbortSignal): Promise<EmbedResult | undefined> {
  const { store, now } = deps;
  const count = request.texts.length;
  if (signal.aborted || !store.addDispatched(jobId, count, now())) return undefined;
  try {
    const result = await deps.embedder.embed(request, signal);
    deps.onChunksEmbedded?.(count);
    return result;
  } catch (reason) {
    if (REFUSED.has(EmbedderError.from(reason).reason)) store.removeDispatched(jobId, count, now());
    else deps.onChunksEmbedded?.(count);
    throw reason;
  }
}
