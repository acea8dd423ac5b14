/**
 * The model benchmark of issue 2: the median ms per batch of 32 mixed-length
 * sentences for every precision variant of the default model (raw
 * onnxruntime-node sessions, the service's tokenizer, padded to the longest
 * row), and the tokenizer's throughput on a short and a very long text.
 */
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { availableParallelism } from "node:os";
import * as ort from "onnxruntime-node";
import type { Precision } from "../src/models/manifest.js";
import { BATCH_SIZE, mixedBatch } from "./bench-sentences.js";
import type { BenchModel } from "./default-model.js";
import { median } from "./stats.js";

/** Timing of one precision variant on the mixed batch. */
export interface PrecisionRow {
  precision: Precision;
  medianMs: number;
}

/** What the model benchmark measured. */
export interface ModelPrecisionReport {
  runs: number;
  realTokens: number;
  paddedLength: number;
  rows: PrecisionRow[];
  tokenizer: { shortTokens: number; shortPerSecond: number; longPerSecond: number };
}

function ratePerSecond(fn: () => void, seconds: number): number {
  let count = 0;
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    fn();
    count++;
  }
  return count / ((performance.now() - started) / 1000);
}

/** Times every variant the manifest lists (`runs` timed runs after 3 warm-ups each) and the tokenizer (`tokenizerSeconds` per input). */
export async function measureModelPrecision(model: BenchModel, runs: number, tokenizerSeconds: number): Promise<ModelPrecisionReport> {
  const { tokenizer, manifest } = model;
  const shortText = "The quick brown fox jumps over the lazy dog by the river.";
  const longText = "Embedding servers turn text into vectors for search and retrieval. ".repeat(150).slice(0, 10_000);
  const encodings = tokenizer.encodeBatch(mixedBatch());
  const padded = tokenizer.pad(encodings);
  const dims = [padded.batchSize, padded.sequenceLength];
  const rows: PrecisionRow[] = [];
  for (const precision of ["fp32", "fp16", "int8", "int4"] as Precision[]) {
    const variant = manifest.variants[precision];
    if (!variant) continue;
    const session = await ort.InferenceSession.create(join(model.dir, variant.file), {
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
    rows.push({ precision, medianMs: median(times) });
  }
  return {
    runs,
    realTokens: encodings.reduce((sum, encoding) => sum + encoding.ids.length, 0),
    paddedLength: padded.sequenceLength,
    rows,
    tokenizer: {
      shortTokens: tokenizer.encode(shortText).ids.length,
      shortPerSecond: ratePerSecond(() => tokenizer.encode(shortText), tokenizerSeconds),
      longPerSecond: ratePerSecond(() => tokenizer.encode(longText), tokenizerSeconds),
    },
  };
}

/** The report as markdown; `referenceMs` is the TF.js reference's median on the same batch, when it ran. */
export function formatModelPrecision(report: ModelPrecisionReport, maxTokens: number, referenceMs?: number): string[] {
  const fp32 = report.rows.find((row) => row.precision === "fp32")?.medianMs ?? Number.NaN;
  const lines = [
    `Batch: ${BATCH_SIZE} mixed-length sentences, ${report.realTokens} tokens after truncation to ${maxTokens}, padded to ${report.paddedLength}; one session with ${availableParallelism()} intra-op threads; ${report.runs} runs.`,
    "",
    "| engine | median ms / batch | texts/s | vs fp32 | vs reference |",
    "|---|---:|---:|---:|---:|",
  ];
  const versus = (ms: number) => (referenceMs === undefined ? "n/a" : `${(referenceMs / ms).toFixed(1)}x`);
  for (const row of report.rows) {
    lines.push(`| onnx ${row.precision} | ${row.medianMs.toFixed(1)} | ${((BATCH_SIZE * 1000) / row.medianMs).toFixed(0)} | ${(fp32 / row.medianMs).toFixed(2)}x | ${versus(row.medianMs)} |`);
  }
  if (referenceMs !== undefined) {
    lines.push(`| TF.js reference (WASM) | ${referenceMs.toFixed(1)} | ${((BATCH_SIZE * 1000) / referenceMs).toFixed(0)} | ${(fp32 / referenceMs).toFixed(2)}x | 1.0x |`);
  }
  lines.push(
    "",
    "| tokenizer input | texts/s |",
    "|---|---:|",
    `| short (${report.tokenizer.shortTokens} tokens) | ${report.tokenizer.shortPerSecond.toFixed(0)} |`,
    `| long (10,000 chars, truncated to ${maxTokens}) | ${report.tokenizer.longPerSecond.toFixed(0)} |`,
  );
  return lines;
}
