/**
 * Peer comparison of issue 6: the transformers.js feature-extraction pipeline
 * (`@huggingface/transformers`, local files only, fp32, mean pooling + normalise)
 * against the service on the same texts, in one run, on a model shaped exactly like
 * all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads, FFN 1536, vocabulary 30,522,
 * 512 positions, window 256) with random weights, made with our tooling
 * (test/support/tiny-models.ts) and served from the models folder as a
 * sentence-transformers folder. Its WordPiece vocabulary is built from the bench
 * corpora, so texts take about as many tokens as with the real model.
 *
 * Texts: 2,240 mixed-length texts from bench/corpora (1,500 queries, 740 passages,
 * interleaved). transformers.js is called as a user would: batches of 32 in corpus
 * order. The service gets the same batches as GenerateEmbeddings requests over gRPC
 * (binary), all 70 requests in flight at once as an ingestion client sends a corpus (the
 * batcher then groups texts of similar length), `quantization: none` (fp32). Both outputs are compared
 * (max abs difference) so the speed is for the same vectors. Each round runs transformers.js
 * then the service (both loaded once, before the rounds), so background load hits both alike;
 * the ratio is the median of the per-round ratios. Target: service >= 3.5x.
 *
 * Run alone: `npx tsx bench/peer-transformers-js.ts [--runs ROUNDS]`; `npm run bench` runs it
 * as the `peer` phase.
 */
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EmbedderService, Quantization } from "../gen/sutra/embedder/v1/embedder_pb.js";
import { buildTinyBertModel, tinyWordPieceVocab, writeTinyBertModel } from "../test/support/tiny-models.js";
import { writeModel } from "../src/onnx/model-io.js";
import { startRealService } from "../test/support/real-service.js";
import { readCorpusTexts } from "./corpora.js";

const MODEL_NAME = "minilm-shaped";
const MINILM = { hiddenSize: 384, layers: 6, heads: 12, intermediateSize: 1536, maxPositions: 512, vocabSize: 30_522, window: 256 };
const BATCH = 32;
/** Requests in flight: every batch at once, as an ingestion client would send a corpus. */
const IN_FLIGHT = 70;
const TARGET_RATIO = 3.5;

/** What one comparison measured. */
export interface PeerResult {
  model: string;
  texts: number;
  tokens: number;
  modelMb: number;
  transformersJs: { version: string; textsPerSecond: number; runsSeconds: number[] };
  service: { textsPerSecond: number; runsSeconds: number[]; stageSeconds: Record<string, number> };
  /** Median of the per-round ratios (service texts/s over transformers.js texts/s). */
  ratio: number;
  roundRatios: number[];
  target: number;
  maxAbsDifference: number;
}

/** 1,500 queries and 740 passages of the committed corpora, interleaved (every third text a passage). */
export function peerTexts(): string[] {
  const queries = readCorpusTexts("queries").slice(0, 1500);
  const passages = readCorpusTexts("passages").slice(0, 740);
  const texts: string[] = [];
  while (queries.length > 0 || passages.length > 0) {
    const query = queries.shift();
    if (query !== undefined) texts.push(query);
    const second = queries.shift();
    if (second !== undefined) texts.push(second);
    const passage = passages.shift();
    if (passage !== undefined) texts.push(passage);
  }
  return texts;
}

/** Words of the corpora by frequency, as BertPreTokenizer splits them (lowercased). */
function corpusWords(texts: string[]): string[] {
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const word of text.toLowerCase().normalize("NFD").replace(/\p{Mn}/gu, "").match(/[\p{L}\p{N}]+/gu) ?? []) {
      counts.set(word, (counts.get(word) ?? 0) + 1);
    }
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([word]) => word);
}

/**
 * Writes the MiniLM-shaped folder under `root/minilm-shaped` (skipped when it is already there):
 * the tiny BERT's file set at MiniLM's shape, with a 30,522-entry WordPiece vocabulary.
 */
export async function writeMiniLmShapedModel(root: string, texts: string[]): Promise<string> {
  const dir = join(root, MODEL_NAME);
  const marker = join(dir, ".complete");
  if (await stat(marker).then(() => true, () => false)) return dir;
  await rm(dir, { recursive: true, force: true });
  await writeTinyBertModel(dir, { hiddenSize: MINILM.hiddenSize, layers: MINILM.layers, heads: MINILM.heads, intermediateSize: MINILM.intermediateSize, maxPositions: MINILM.maxPositions, seed: 6 });
  const base = tinyWordPieceVocab();
  const known = new Set(base);
  const vocab = [...base, ...corpusWords(texts).filter((word) => !known.has(word))].slice(0, MINILM.vocabSize);
  while (vocab.length < MINILM.vocabSize) vocab.push(`[unused${vocab.length}]`);
  const readJson = async (file: string) => JSON.parse(await readFile(join(dir, file), "utf8")) as Record<string, unknown>;
  const writeJson = (file: string, value: unknown) => writeFile(join(dir, file), `${JSON.stringify(value, null, 2)}\n`);
  const tokenizer = await readJson("tokenizer.json");
  (tokenizer.model as { vocab: Record<string, number> }).vocab = Object.fromEntries(vocab.map((token, index) => [token, index]));
  await writeJson("tokenizer.json", tokenizer);
  await writeJson("config.json", { ...(await readJson("config.json")), vocab_size: MINILM.vocabSize });
  await writeJson("sentence_bert_config.json", { max_seq_length: MINILM.window, do_lower_case: false });
  await writeJson("tokenizer_config.json", { ...(await readJson("tokenizer_config.json")), model_max_length: MINILM.window });
  await writeModel(join(dir, "onnx", "model.onnx"), buildTinyBertModel({ ...MINILM, seed: 6 }));
  await writeFile(marker, "");
  return dir;
}

const batchesOf = (texts: string[]) => Array.from({ length: Math.ceil(texts.length / BATCH) }, (_, index) => texts.slice(index * BATCH, (index + 1) * BATCH));

/** Runs the comparison; `root` holds the model folder (kept between runs). */
export async function runPeerComparison(options: { runs?: number; root?: string; progress?: (message: string) => void } = {}): Promise<PeerResult> {
  const runs = options.runs ?? 3;
  const progress = options.progress ?? (() => {});
  const root = options.root ?? join(tmpdir(), "sutra-bench-peer");
  await mkdir(root, { recursive: true });
  const texts = peerTexts();
  progress(`peer: writing the MiniLM-shaped model in ${root}`);
  const dir = await writeMiniLmShapedModel(root, texts);
  const modelMb = (await stat(join(dir, "onnx", "model.onnx"))).size / 2 ** 20;
  const batches = batchesOf(texts);

  progress("peer: transformers.js feature-extraction pipeline (local files, fp32)");
  const transformers = await import("@huggingface/transformers");
  transformers.env.allowRemoteModels = false;
  transformers.env.localModelPath = `${root}/`;
  const extractor = await transformers.pipeline("feature-extraction", MODEL_NAME, { dtype: "fp32", device: "cpu" });
  const peerVectors: number[][] = [];
  let tokens = 0;
  for (const text of texts) tokens += (extractor.tokenizer(text) as { input_ids: { dims: number[] } }).input_ids.dims[1];
  await extractor(batches[0], { pooling: "mean", normalize: true });
  const runPeer = async (keep: boolean): Promise<number> => {
    const started = performance.now();
    for (const batch of batches) {
      const output = await extractor(batch, { pooling: "mean", normalize: true });
      if (keep) peerVectors.push(...(output.tolist() as number[][]));
    }
    return (performance.now() - started) / 1000;
  };

  progress(`peer: the service (gRPC, fp32, batches of ${BATCH}, ${IN_FLIGHT} in flight)`);
  const running = await startRealService({ modelsDir: root, cacheSize: 0 });
  const serviceVectors: number[][] = new Array(texts.length);
  try {
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
    const request = (batch: string[]) => client.generateEmbeddings({ texts: batch, model: MODEL_NAME, config: { quantization: Quantization.NONE } });
    await request(batches[0]);
    const runService = async (keep: boolean): Promise<number> => {
      const started = performance.now();
      let next = 0;
      await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
        for (let index = next++; index < batches.length; index = next++) {
          const answer = await request(batches[index]);
          if (keep) answer.embeddings.forEach((embedding, row) => { serviceVectors[index * BATCH + row] = embedding.values; });
        }
      }));
      return (performance.now() - started) / 1000;
    };

    // Rounds alternate the two runners, so a change in the machine's background load moves both.
    const peerRuns: number[] = [];
    const serviceRuns: number[] = [];
    for (let round = 0; round < runs; round++) {
      peerRuns.push(await runPeer(round === 0));
      serviceRuns.push(await runService(round === 0));
      progress(`  round ${round + 1}: transformers.js ${(texts.length / peerRuns[round]).toFixed(0)} texts/s, service ${(texts.length / serviceRuns[round]).toFixed(0)} texts/s`);
    }
    const stages = (await running.service.metrics.stageSeconds.get()).values.filter((value) => value.metricName === "sutra_stage_duration_seconds_sum");
    const stageSeconds = Object.fromEntries(stages.map((value) => [String(value.labels.stage), value.value]));
    let maxAbsDifference = 0;
    for (const [index, vector] of serviceVectors.entries()) {
      for (const [dimension, value] of vector.entries()) maxAbsDifference = Math.max(maxAbsDifference, Math.abs(value - peerVectors[index][dimension]));
    }
    const median = (values: number[]) => {
      const sorted = [...values].sort((a, b) => a - b);
      const middle = Math.floor(sorted.length / 2);
      return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    };
    const roundRatios = peerRuns.map((seconds, round) => seconds / serviceRuns[round]);
    return {
      model: "all-MiniLM-L6-v2 shape, random weights (6 x 384, FFN 1536, vocab 30522)",
      texts: texts.length,
      tokens,
      modelMb,
      transformersJs: { version: transformers.env.version, textsPerSecond: texts.length / median(peerRuns), runsSeconds: peerRuns },
      service: { textsPerSecond: texts.length / median(serviceRuns), runsSeconds: serviceRuns, stageSeconds },
      ratio: median(roundRatios),
      roundRatios,
      target: TARGET_RATIO,
      maxAbsDifference,
    };
  } finally {
    await extractor.dispose();
    await running.stop();
  }
}

/** The comparison as a markdown section. */
export function formatPeerResult(result: PeerResult): string {
  const verdict = result.ratio >= result.target ? "met" : "MISSED";
  const stages = Object.entries(result.service.stageSeconds).map(([stage, seconds]) => `${stage} ${seconds.toFixed(2)} s`).join(", ");
  return [
    "## Peer: transformers.js vs the service (MiniLM-shaped model, fp32)",
    "",
    `${result.model}; ${result.modelMb.toFixed(0)} MB ONNX; ${result.texts} texts, ${result.tokens} tokens; medians of ${result.service.runsSeconds.length} rounds, each running both.`,
    "",
    "| runner | texts/s |",
    "|---|---|",
    `| transformers.js ${result.transformersJs.version} feature-extraction, batches of 32 in corpus order | ${result.transformersJs.textsPerSecond.toFixed(0)} |`,
    `| service, gRPC, batches of ${BATCH}, ${IN_FLIGHT} requests in flight | ${result.service.textsPerSecond.toFixed(0)} |`,
    "",
    `Ratio ${result.ratio.toFixed(2)}x, median of rounds ${result.roundRatios.map((ratio) => ratio.toFixed(2)).join(", ")} (target >= ${result.target}x: ${verdict}); max abs difference of the vectors ${result.maxAbsDifference.toExponential(1)}.`,
    `Service stage time summed over requests, all runs (requests overlap, so the sums exceed wall time): ${stages}.`,
    "",
  ].join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({ options: { runs: { type: "string", default: "3" }, json: { type: "string" } } });
  const result = await runPeerComparison({ runs: Number(values.runs), progress: (message) => process.stderr.write(`[peer] ${message}\n`) });
  console.log(formatPeerResult(result));
  if (values.json) await writeFile(values.json, `${JSON.stringify(result, null, 1)}\n`);
}
