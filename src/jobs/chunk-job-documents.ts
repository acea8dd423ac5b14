import { performance } from "node:perf_hooks";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { chunkDocument } from "./chunk-document.js";
import type { ChunkSpan } from "./chunk-document.js";
import type { JobDeps } from "./job-service-deps.js";
import type { ChunkingPlan } from "./plan-chunking.js";

/** Longest stretch the chunker runs before yielding to the event loop, in ms. */
const CHUNKING_SLICE_MS = 4;
/** Chunks of several documents saved in one transaction while a job is cut. */
const SAVE_CHUNKS = 512;

/**
 * Cuts the documents of job `jobId` not cut yet (chunkDocument, sized by
 * `plan`) and stores their chunks, several documents per transaction (up to
 * SAVE_CHUNKS chunks), yielding to the event loop every CHUNKING_SLICE_MS so
 * online requests are not held up by a large job; false when stopped on the
 * way. A document is saved whole or not at all, so a resumed job cuts only
 * what was not saved.
 */
export async function chunkJobDocuments(deps: Pick<JobDeps, "store" | "now">, jobId: string, plan: ChunkingPlan, signal: AbortSignal): Promise<boolean> {
  const { store, now } = deps;
  let unsaved: Array<{ documentIndex: number; chunks: ChunkSpan[] }> = [];
  let unsavedChunks = 0;
  const save = () => {
    if (unsaved.length > 0) store.saveChunks(jobId, unsaved, now());
    unsaved = [];
    unsavedChunks = 0;
  };
  let sliceStarted = performance.now();
  for (const documentIndex of store.unchunkedDocuments(jobId)) {
    const document = store.document(jobId, documentIndex);
    if (document === undefined) return false;
    const chunks: ChunkSpan[] = [];
    for (const chunk of chunkDocument(document.text, plan.chunking, plan.measure)) {
      chunks.push(chunk);
      if (performance.now() - sliceStarted > CHUNKING_SLICE_MS) {
        await yieldToEventLoop();
        if (signal.aborted) return false;
        sliceStarted = performance.now();
      }
    }
    unsaved.push({ documentIndex, chunks });
    unsavedChunks += chunks.length;
    if (unsavedChunks >= SAVE_CHUNKS) save();
  }
  if (signal.aborted) return false;
  save();
  return true;
}
