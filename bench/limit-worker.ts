/**
 * One thread of the inference-limit measurement (bench/inference-limit.ts): its
 * own tokenizer and onnxruntime session, configured as the service's workers
 * configure theirs. After loading and a warm-up it answers "ready"; on "go" it
 * tokenizes, pads and runs its batches in a loop for the given time and answers
 * with what it did. Nothing else runs on this thread.
 */
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import * as ort from "onnxruntime-node";
import { loadTokenizer } from "../src/tokenize/index.js";
import type { LimitWorkerData, LimitWorkerReport } from "./inference-limit.js";

const data = workerData as LimitWorkerData;
const port = parentPort;
if (!port) throw new Error("bench/limit-worker.ts runs as a worker thread");

const tokenizer = await loadTokenizer(data.tokenizerFile, { maxTokens: data.maxTokens });
const session = await ort.InferenceSession.create(data.modelFile, {
  intraOpNumThreads: data.intraOpThreads,
  interOpNumThreads: 1,
  graphOptimizationLevel: "all",
  executionMode: "sequential",
});

async function runBatch(texts: string[]): Promise<number> {
  const encodings = tokenizer.encodeBatch(texts);
  const padded = tokenizer.pad(encodings);
  const dims = [padded.batchSize, padded.sequenceLength];
  await session.run({
    input_ids: new ort.Tensor("int64", padded.inputIds, dims),
    attention_mask: new ort.Tensor("int64", padded.attentionMask, dims),
  }, [data.output]);
  return encodings.reduce((sum, encoding) => sum + encoding.ids.length, 0);
}

for (const batch of data.batches.slice(0, 3)) await runBatch(batch);
port.postMessage({ type: "ready" });
port.once("message", async () => {
  let texts = 0;
  let tokens = 0;
  const started = performance.now();
  for (let index = 0; performance.now() - started < data.durationMs; index++) {
    const batch = data.batches[index % data.batches.length];
    tokens += await runBatch(batch);
    texts += batch.length;
  }
  const report: LimitWorkerReport = { type: "done", texts, tokens, elapsedMs: performance.now() - started };
  await session.release();
  port.postMessage(report);
});
