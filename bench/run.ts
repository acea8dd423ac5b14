/**
 * `npm run bench`: the model benchmark of issue 2. Prints, in one run on this
 * machine, the median ms per batch of 32 mixed-length sentences for every
 * precision variant of the default model (raw onnxruntime-node sessions, the
 * service's tokenizer) next to the TF.js reference, and tokenizer throughput.
 * Options: `--runs N` (default 30).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID } from "../src/models/builtin.js";
import type { ModelManifest, Precision } from "../src/models/manifest.js";
import { loadTokenizer } from "../src/tokenize/index.js";
import { BATCH_SIZE, median, mixedBatch } from "./bench-sentences.js";

const { values } = parseArgs({ options: { runs: { type: "string", default: "30" } } });
const runs = Number(values.runs);
const modelDir = join(BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID);
const manifest = JSON.parse(readFileSync(join(modelDir, "sutra-model.json"), "utf8")) as ModelManifest;
const tokenizer = await loadTokenizer(join(modelDir, manifest.tokenizer), { maxTokens: manifest.maxTokens });
const batch = mixedBatch();

function timeSync(fn: () => void, seconds: number): number {
  let count = 0;
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    fn();
    count++;
  }
  return count / ((performance.now() - started) / 1000);
}

const shortText = "The quick brown fox jumps over the lazy dog by the river.";
const longText = "Embedding servers turn text into vectors for search and retrieval. ".repeat(150).slice(0, 10_000);
const shortTokens = tokenizer.encode(shortText).ids.length;
const shortRate = timeSync(() => tokenizer.encode(shortText), 2);
const longRate = timeSync(() => tokenizer.encode(longText), 2);

const encodings = tokenizer.encodeBatch(batch);
const padded = tokenizer.pad(encodings);
const dims = [padded.batchSize, padded.sequenceLength];
const realTokens = encodings.reduce((sum, encoding) => sum + encoding.ids.length, 0);

interface Row { name: string; medianMs: number }
const rows: Row[] = [];
for (const precision of ["fp32", "fp16", "int8", "int4"] as Precision[]) {
  const variant = manifest.variants[precision];
  if (!variant) continue;
  const session = await ort.InferenceSession.create(join(modelDir, variant.file), {
    intraOpNumThreads: availableParallelism(),
    graphOptimizationLevel: "all",
  });
  const feeds = {
    input_ids: new ort.Tensor("int64", padded.inputIds, dims),
    attention_mask: new ort.Tensor("int64", padded.attentionMask, dims),
  };
  for (let warm = 0; warm < 3; warm++) await session.run(feeds);
  const times: number[] = [];
  for (let run = 0; run < runs; run++) {
    const started = performance.now();
    await session.run(feeds);
    times.push(performance.now() - started);
  }
  await session.release();
  rows.push({ name: `onnx ${precision}`, medianMs: median(times) });
}

const referenceRuns = Math.max(3, Math.min(runs, 10));
const reference = JSON.parse(
  execFileSync(process.execPath, ["--import", "tsx", new URL("./reference-tfjs.ts", import.meta.url).pathname, String(referenceRuns)], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  }).trim().split("\n").pop() ?? "{}",
) as { medianMs: number };
rows.push({ name: "TF.js reference (WASM)", medianMs: reference.medianMs });

const fp32 = rows.find((row) => row.name === "onnx fp32")?.medianMs ?? Number.NaN;
console.log(`Machine: ${cpus()[0]?.model ?? "cpu"}, ${availableParallelism()} cores; node ${process.version}; onnxruntime-node ${ort.env.versions.node}`);
console.log(`Batch: ${BATCH_SIZE} mixed-length sentences, ${realTokens} tokens after truncation to ${manifest.maxTokens}, padded to ${padded.sequenceLength}; ${runs} runs (reference ${referenceRuns})\n`);
console.log("| engine | median ms / batch | texts/s | vs fp32 | vs reference |");
console.log("|---|---:|---:|---:|---:|");
for (const row of rows) {
  console.log(`| ${row.name} | ${row.medianMs.toFixed(1)} | ${((BATCH_SIZE * 1000) / row.medianMs).toFixed(0)} | ${(fp32 / row.medianMs).toFixed(2)}x | ${(reference.medianMs / row.medianMs).toFixed(1)}x |`);
}
console.log("\n| tokenizer input | texts/s |");
console.log("|---|---:|");
console.log(`| short (${shortTokens} tokens) | ${shortRate.toFixed(0)} |`);
console.log(`| long (10,000 chars, truncated to ${manifest.maxTokens}) | ${longRate.toFixed(0)} |`);
