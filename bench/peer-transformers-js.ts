/**
 * Peer comparison of issues 6 and 15: the transformers.js feature-extraction pipeline
 * (`@huggingface/transformers`, local files only, fp32, mean pooling + normalise) against the
 * service, and the service against raw onnxruntime-node, on the same texts in one run, on a model
 * shaped exactly like all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads, FFN 1536, vocabulary
 * 30,522, 512 positions, window 256) with random weights, made with our tooling
 * (test/support/tiny-models.ts) and prepared as `sutra models build` prepares a folder (the
 * fp16/int8/int4 variants that pass their quality gates, and sutra-model.json). Its WordPiece
 * vocabulary is built from the texts, so they take about as many tokens as with the real model.
 *
 * Texts: the 2,400 mixed-length texts of bench/mixed-texts.ts (mean 20-30 tokens, about 5% past
 * the 256-token window and truncated by every runner), in their fixed shuffled order. The phase
 * measures and prints their token counts with the transformers.js tokenizer (no truncation).
 *
 * Runners, each round in this order, every model loaded before the rounds:
 * 1. transformers.js as a user calls it: batches of 32 in corpus order, one after the other.
 * 2-3. The service (test/support/real-service.ts, embedding cache off) over REST
 *    (`POST /v1/embeddings`, keep-alive), one client keeping 4 requests of 32 texts in flight
 *    (the same batches, in corpus order), at fp32 (`quantization: none`) and at the model's
 *    default variant (no quantization asked for: int8 on CPU); the precision each answer's
 *    `model_info` reports is printed.
 * 4-5. The limit: tokenization and padding on this thread plus raw onnxruntime-node inference in
 *    worker threads laid out as the service's workers on this host (its `auto` hardware profile:
 *    on 2 cores, 2 threads of 1 intra-op thread, each taking the next batch), no server, on the
 *    texts sorted by token count over the whole corpus and cut into batches of 32, at fp32
 *    (onnx/model.onnx) and int8 (the variant file the service runs).
 * 6-7. The service with 16 clients each keeping one request of 32 texts in flight, fp32 and int8.
 *
 * Targets, each the median of its per-round ratios: service (4 x 32) >= 3.5x transformers.js at
 * fp32 and >= 5x at int8; service (16 x 32) >= 0.80 of the limit at each precision. Checks of the
 * vectors (first round): max abs difference of the service's fp32 vectors from transformers.js's
 * (apart for the texts within the window and those past it, which the two truncate differently),
 * and the least cosine of the service's int8 vectors with its fp32 ones (target >= 0.995). The
 * service's batch statistics per runner come from its metrics (`sutra_batch_size`,
 * `sutra_batch_tokens`, and `sutra_batch_tokens_total` by kind for the padding share).
 *
 * Run alone: `npx tsx bench/peer-transformers-js.ts [--runs ROUNDS] [--json FILE]`; `npm run bench`
 * runs it as the `peer` phase.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import type * as ort from "onnxruntime-node";
import type { Registry } from "prom-client";
import { resolveHardwareProfile } from "../src/inference/hardware-profile.js";
import { createVariantPreparer } from "../src/models/hub/prepare-variants.js";
import { describeSentenceTransformersFolder, hashFolder, writeManifest } from "../src/models/hf-folder.js";
import { MANIFEST_FILE, type ModelManifest } from "../src/models/manifest.js";
import { writeModel } from "../src/onnx/model-io.js";
import { loadTokenizer, type Tokenizer } from "../src/tokenize/index.js";
import { startRealService } from "../test/support/real-service.js";
import { buildTinyBertModel, tinyWordPieceVocab, writeTinyBertModel } from "../test/support/tiny-models.js";
import { MIXED_TEXTS_WINDOW, mixedTexts } from "./mixed-texts.js";

const MODEL_NAME = "minilm-shaped";
const MINILM = { hiddenSize: 384, layers: 6, heads: 12, intermediateSize: 1536, maxPositions: 512, vocabSize: 30_522, window: MIXED_TEXTS_WINDOW };
const BATCH = 32;
/** Requests one ingestion client keeps in flight against transformers.js. */
const PEER_CLIENT_IN_FLIGHT = 4;
/** Clients of the comparison with the limit, one request in flight each. */
const LIMIT_CLIENTS = 16;
const INT8_MIN_COSINE_TARGET = 0.995;

/** The runners, in the order each round runs them. */
export const PEER_RUNNERS = ["transformersJs", "service4Fp32", "service4Int8", "limitFp32", "limitInt8", "service16Fp32", "service16Int8"] as const;

/** One runner's name. */
export type PeerRunnerId = (typeof PEER_RUNNERS)[number];

/** What the service's metrics say about the batches one runner's requests became (all rounds together). */
export interface PeerBatchStats {
  batches: number;
  meanTexts: number;
  /** Mean of `sutra_batch_tokens` (batch size x padded length). */
  meanPaddedTokens: number;
  /** Share of the tokens run that were padding (`sutra_batch_tokens_total`: padding / (content + padding)). */
  paddingShare: number;
}

/** One runner's measurements. */
export interface PeerRunnerResult {
  id: PeerRunnerId;
  label: string;
  /** The precision that ran (for the service, what its answers' `model_info.precision` said). */
  precision: string;
  /** Texts over the median of the rounds' seconds. */
  textsPerSecond: number;
  runsSeconds: number[];
  batchStats?: PeerBatchStats;
}

/** A target: a runner's throughput over a baseline's, round by round. */
export interface PeerRatio {
  runner: PeerRunnerId;
  baseline: PeerRunnerId;
  /** Median of the per-round ratios. */
  ratio: number;
  roundRatios: number[];
  target: number;
  met: boolean;
}

/** What one comparison measured; plain data, written as JSON by `--json`. */
export interface PeerResult {
  model: string;
  modelMb: number;
  transformersJsVersion: string;
  corpus: {
    texts: number;
    /** Mean tokens per text, counted by the transformers.js tokenizer without truncation. */
    meanTokens: number;
    /** Mean tokens per text once cut to the window: what the runners embed. */
    meanTokensInWindow: number;
    window: number;
    /** Share of the texts longer than the window. */
    pastWindowShare: number;
    maxTokens: number;
  };
  rounds: number;
  runners: PeerRunnerResult[];
  ratios: PeerRatio[];
  /**
   * Largest difference between the service's fp32 vectors and transformers.js's, over the texts
   * within the window and over those past it (transformers.js 4.3.1 cuts a long text after adding
   * [CLS] and [SEP], so its last token is a word where the service keeps [SEP]).
   */
  maxAbsDifference: { withinWindow: number; pastWindow: number };
  /** Least cosine between the service's int8 vectors and its fp32 vectors. */
  int8MinCosine: number;
  int8MinCosineTarget: number;
}

/** Words of the texts by frequency, as BertPreTokenizer splits them (lowercased). */
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
 * Writes the MiniLM-shaped folder under `root/minilm-shaped`: the tiny BERT's file set at MiniLM's
 * shape with a 30,522-entry WordPiece vocabulary built from `texts`, then its precision variants and
 * manifest as `sutra models build` makes them. Skipped when the folder was already built for the
 * same vocabulary; returns the folder and its manifest.
 */
export async function writeMiniLmShapedModel(root: string, texts: string[]): Promise<{ dir: string; manifest: ModelManifest }> {
  const dir = join(root, MODEL_NAME);
  const marker = join(dir, ".complete");
  const base = tinyWordPieceVocab();
  const known = new Set(base);
  const vocab = [...base, ...corpusWords(texts).filter((word) => !known.has(word))].slice(0, MINILM.vocabSize);
  while (vocab.length < MINILM.vocabSize) vocab.push(`[unused${vocab.length}]`);
  const buildKey = createHash("sha256").update(vocab.join("\n")).digest("hex");
  const readJson = async (file: string) => JSON.parse(await readFile(join(dir, file), "utf8")) as Record<string, unknown>;
  if ((await readFile(marker, "utf8").catch(() => "")) === buildKey) return { dir, manifest: (await readJson(MANIFEST_FILE)) as unknown as ModelManifest };

  await rm(dir, { recursive: true, force: true });
  await writeTinyBertModel(dir, { hiddenSize: MINILM.hiddenSize, layers: MINILM.layers, heads: MINILM.heads, intermediateSize: MINILM.intermediateSize, maxPositions: MINILM.maxPositions, seed: 6 });
  const writeJson = (file: string, value: unknown) => writeFile(join(dir, file), `${JSON.stringify(value, null, 2)}\n`);
  const tokenizer = await readJson("tokenizer.json");
  (tokenizer.model as { vocab: Record<string, number> }).vocab = Object.fromEntries(vocab.map((token, index) => [token, index]));
  await writeJson("tokenizer.json", tokenizer);
  await writeJson("config.json", { ...(await readJson("config.json")), vocab_size: MINILM.vocabSize });
  await writeJson("sentence_bert_config.json", { max_seq_length: MINILM.window, do_lower_case: false });
  await writeJson("tokenizer_config.json", { ...(await readJson("tokenizer_config.json")), model_max_length: MINILM.window });
  await writeModel(join(dir, "onnx", "model.onnx"), buildTinyBertModel({ ...MINILM, seed: 6 }));
  let manifest = await createVariantPreparer()(dir, await describeSentenceTransformersFolder(dir));
  manifest = { ...manifest, files: await hashFolder(dir) };
  await writeManifest(dir, manifest);
  await writeFile(marker, buildKey);
  return { dir, manifest };
}

const batchesOf = (texts: string[]) => Array.from({ length: Math.ceil(texts.length / BATCH) }, (_, index) => texts.slice(index * BATCH, (index + 1) * BATCH));

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** Counters of the service's metrics that batch statistics are differences of. */
interface BatchCounters {
  batches: number;
  texts: number;
  paddedTokens: number;
  contentTokens: number;
  paddingTokens: number;
}

/** Reads the batch counters from the service's registry; a histogram's `_sum`, a counter's total (of one `kind`). */
async function readBatchCounters(registry: Registry): Promise<BatchCounters> {
  const metrics = await registry.getMetricsAsJSON();
  const total = (name: string, kind?: string) => metrics
    .flatMap((metric) => metric.values.map((value) => ({ name: (value as { metricName?: string }).metricName ?? metric.name, kind: value.labels.kind, value: value.value })))
    .filter((value) => value.name === name && (kind === undefined || value.kind === kind))
    .reduce((sum, value) => sum + value.value, 0);
  return {
    batches: total("sutra_batch_size_count"),
    texts: total("sutra_batch_size_sum"),
    paddedTokens: total("sutra_batch_tokens_sum"),
    contentTokens: total("sutra_batch_tokens_total", "content"),
    paddingTokens: total("sutra_batch_tokens_total", "padding"),
  };
}

/** Sums the differences `after - before` into `into`. */
function addCounterDifference(into: BatchCounters, before: BatchCounters, after: BatchCounters): void {
  into.batches += after.batches - before.batches;
  into.texts += after.texts - before.texts;
  into.paddedTokens += after.paddedTokens - before.paddedTokens;
  into.contentTokens += after.contentTokens - before.contentTokens;
  into.paddingTokens += after.paddingTokens - before.paddingTokens;
}

function batchStats(counters: BatchCounters): PeerBatchStats {
  return {
    batches: counters.batches,
    meanTexts: counters.texts / counters.batches,
    meanPaddedTokens: counters.paddedTokens / counters.batches,
    paddingShare: counters.paddingTokens / (counters.contentTokens + counters.paddingTokens),
  };
}

/** The REST answer fields the comparison reads (docs/REST.md). */
interface RestEmbeddingsAnswer {
  embeddings: number[][];
  model_info: { precision: string };
}

/**
 * One inference thread of the limit, as plain JavaScript evaluated by `new Worker(..., { eval: true })`
 * (a worker thread loads no TypeScript): one onnxruntime-node session of `workerData.modelFile`;
 * it answers "ready" once loaded, then runs each padded batch it is sent and answers "done".
 */
const LIMIT_THREAD_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const ort = require(workerData.ortPath);
ort.InferenceSession.create(workerData.modelFile, workerData.sessionOptions).then((session) => {
  parentPort.on("message", async ({ inputs, dims }) => {
    const feeds = Object.fromEntries(session.inputNames.map((name) => [name, new ort.Tensor("int64", inputs[name], dims)]));
    await session.run(feeds, [workerData.output]);
    parentPort.postMessage("done");
  });
  parentPort.postMessage("ready");
});
`;

/**
 * The limit's runner, laid out as the service runs inference: this thread tokenizes and pads, and
 * `layout.threads` worker threads, each with one onnxruntime-node session of `modelFile` with
 * `layout.intraOpThreads` intra-op threads (the service's workers' session options), run the
 * batches, each thread taking the next batch as it finishes one. (Sessions sharing this thread do
 * not run in parallel: onnxruntime-node runs them one at a time.)
 */
async function createLimitRunner(modelFile: string, tokenizer: Tokenizer, output: string, layout: { threads: number; intraOpThreads: number }) {
  const sessionOptions: ort.InferenceSession.SessionOptions = { intraOpNumThreads: layout.intraOpThreads, interOpNumThreads: 1, graphOptimizationLevel: "all", executionMode: "sequential" };
  const workerData = { ortPath: createRequire(import.meta.url).resolve("onnxruntime-node"), modelFile, output, sessionOptions };
  const threads = Array.from({ length: layout.threads }, () => new Worker(LIMIT_THREAD_SOURCE, { eval: true, workerData }));
  // events.once rejects on the thread's "error" and removes both listeners either way.
  const answer = (thread: Worker) => once(thread, "message");
  await Promise.all(threads.map(answer));
  const runBatch = async (thread: Worker, batch: string[]) => {
    const padded = tokenizer.pad(tokenizer.encodeBatch(batch));
    const inputs = { input_ids: padded.inputIds, attention_mask: padded.attentionMask, token_type_ids: new BigInt64Array(padded.inputIds.length) };
    const done = answer(thread);
    thread.postMessage({ inputs, dims: [padded.batchSize, padded.sequenceLength] }, Object.values(inputs).map((array) => array.buffer as ArrayBuffer));
    await done;
  };
  return {
    async run(batches: string[][]): Promise<void> {
      let next = 0;
      await Promise.all(threads.map(async (thread) => {
        for (let index = next++; index < batches.length; index = next++) await runBatch(thread, batches[index]);
      }));
    },
    release: () => Promise.all(threads.map((thread) => thread.terminate())),
  };
}

/** Least cosine between rows of `a` and the same rows of `b`. */
function minCosine(a: number[][], b: number[][]): number {
  let least = 1;
  for (const [row, left] of a.entries()) {
    const right = b[row];
    let dot = 0;
    let leftNorm = 0;
    let rightNorm = 0;
    for (const [dimension, value] of left.entries()) {
      dot += value * right[dimension];
      leftNorm += value * value;
      rightNorm += right[dimension] * right[dimension];
    }
    least = Math.min(least, dot / Math.sqrt(leftNorm * rightNorm));
  }
  return least;
}

/** Largest absolute difference between rows of `a` and the same rows of `b`. */
function maxAbsDifference(a: number[][], b: number[][]): number {
  let largest = 0;
  for (const [row, left] of a.entries()) {
    for (const [dimension, value] of left.entries()) largest = Math.max(largest, Math.abs(value - b[row][dimension]));
  }
  return largest;
}

/** Runs the comparison; `root` holds the model folder (kept between runs). */
export async function runPeerComparison(options: { runs?: number; root?: string; progress?: (message: string) => void } = {}): Promise<PeerResult> {
  const runs = options.runs ?? 3;
  const progress = options.progress ?? (() => {});
  const root = options.root ?? join(tmpdir(), "sutra-bench-peer");
  await mkdir(root, { recursive: true });
  const texts = mixedTexts();
  progress(`peer: the MiniLM-shaped model and its precision variants in ${root}`);
  const { dir, manifest } = await writeMiniLmShapedModel(root, texts);
  const int8File = manifest.variants.int8?.file;
  if (int8File === undefined) throw new Error(`${dir}: the int8 variant failed its quality gate or was not built; see ${MANIFEST_FILE}`);
  const fp32File = manifest.variants.fp32?.file ?? "onnx/model.onnx";
  const modelMb = (await stat(join(dir, fp32File))).size / 2 ** 20;
  const batches = batchesOf(texts);

  progress("peer: transformers.js feature-extraction pipeline (local files, fp32)");
  const transformers = await import("@huggingface/transformers");
  transformers.env.allowRemoteModels = false;
  transformers.env.localModelPath = `${root}/`;
  const extractor = await transformers.pipeline("feature-extraction", MODEL_NAME, { dtype: "fp32", device: "cpu" });
  const tokenCounts = texts.map((text) => (extractor.tokenizer(text) as { input_ids: { dims: number[] } }).input_ids.dims[1]);
  const pastWindow = tokenCounts.filter((count) => count > MINILM.window).length;
  const sumOf = (values: number[]) => values.reduce((sum, value) => sum + value, 0);
  const corpus = {
    texts: texts.length,
    meanTokens: sumOf(tokenCounts) / texts.length,
    meanTokensInWindow: sumOf(tokenCounts.map((count) => Math.min(count, MINILM.window))) / texts.length,
    window: MINILM.window,
    pastWindowShare: pastWindow / texts.length,
    maxTokens: Math.max(...tokenCounts),
  };
  progress(`peer: ${corpus.texts} texts, mean ${corpus.meanTokens.toFixed(1)} tokens, ${(corpus.pastWindowShare * 100).toFixed(1)}% past ${corpus.window}`);

  const profile = resolveHardwareProfile("auto", { cuda: false, cudaAvailable: false });
  const layout = { threads: profile.workers, intraOpThreads: profile.intraOpThreads };
  progress(`peer: the limit, onnxruntime-node in ${layout.threads} worker threads x ${layout.intraOpThreads} intra-op threads (as the service's workers), fp32 and int8`);
  const tokenizer = await loadTokenizer(join(dir, manifest.tokenizer), { maxTokens: manifest.maxTokens, paddingSide: manifest.paddingSide });
  const sortedBatches = batchesOf(texts.map((text) => ({ text, tokens: tokenizer.encode(text).ids.length })).sort((a, b) => a.tokens - b.tokens).map((entry) => entry.text));
  const limits = {
    fp32: await createLimitRunner(join(dir, fp32File), tokenizer, manifest.output, layout),
    int8: await createLimitRunner(join(dir, int8File), tokenizer, manifest.output, layout),
  };

  progress(`peer: the service over REST (cache off), ${PEER_CLIENT_IN_FLIGHT} x ${BATCH} and ${LIMIT_CLIENTS} x ${BATCH} texts in flight`);
  const running = await startRealService({ modelsDir: root, cacheSize: 0 });
  try {
    const precisionsSeen = new Map<PeerRunnerId, Set<string>>();
    const embed = async (batch: string[], quantization: "none" | undefined): Promise<RestEmbeddingsAnswer> => {
      const response = await fetch(`${running.baseUrl}/v1/embeddings`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ texts: batch, model: MODEL_NAME, ...(quantization ? { config: { quantization } } : {}) }),
      });
      if (!response.ok) throw new Error(`POST /v1/embeddings answered ${response.status}: ${await response.text()}`);
      return (await response.json()) as RestEmbeddingsAnswer;
    };
    const batchCounters = new Map<PeerRunnerId, BatchCounters>();
    /** Sends every batch, in corpus order, from `clients` senders; `vectors` keeps the answers. */
    const serviceRunner = (id: PeerRunnerId, clients: number, quantization: "none" | undefined) => async (vectors?: number[][]) => {
      const before = await readBatchCounters(running.service.metrics.registry);
      let next = 0;
      await Promise.all(Array.from({ length: clients }, async () => {
        for (let index = next++; index < batches.length; index = next++) {
          const answer = await embed(batches[index], quantization);
          precisionsSeen.set(id, (precisionsSeen.get(id) ?? new Set()).add(answer.model_info.precision));
          if (vectors) answer.embeddings.forEach((embedding, row) => { vectors[index * BATCH + row] = embedding; });
        }
      }));
      const counters = batchCounters.get(id) ?? { batches: 0, texts: 0, paddedTokens: 0, contentTokens: 0, paddingTokens: 0 };
      addCounterDifference(counters, before, await readBatchCounters(running.service.metrics.registry));
      batchCounters.set(id, counters);
    };
    const runners: Record<PeerRunnerId, { label: string; precision: string; run: (vectors?: number[][]) => Promise<void> }> = {
      transformersJs: {
        label: `transformers.js ${transformers.env.version} feature-extraction, batches of ${BATCH} in corpus order`,
        precision: "fp32",
        async run(vectors) {
          for (const batch of batches) {
            const output = await extractor(batch, { pooling: "mean", normalize: true });
            if (vectors) vectors.push(...(output.tolist() as number[][]));
          }
        },
      },
      service4Fp32: { label: `service, REST, ${PEER_CLIENT_IN_FLIGHT} x ${BATCH} texts in flight, quantization none`, precision: "fp32", run: serviceRunner("service4Fp32", PEER_CLIENT_IN_FLIGHT, "none") },
      service4Int8: { label: `service, REST, ${PEER_CLIENT_IN_FLIGHT} x ${BATCH} texts in flight, default variant`, precision: "int8", run: serviceRunner("service4Int8", PEER_CLIENT_IN_FLIGHT, undefined) },
      limitFp32: { label: `limit: onnxruntime-node, ${layout.threads} worker threads x ${layout.intraOpThreads} intra-op, length-sorted batches of ${BATCH}`, precision: "fp32", run: () => limits.fp32.run(sortedBatches) },
      limitInt8: { label: `limit: onnxruntime-node, ${layout.threads} worker threads x ${layout.intraOpThreads} intra-op, length-sorted batches of ${BATCH}`, precision: "int8", run: () => limits.int8.run(sortedBatches) },
      service16Fp32: { label: `service, REST, ${LIMIT_CLIENTS} clients x ${BATCH} texts, quantization none`, precision: "fp32", run: serviceRunner("service16Fp32", LIMIT_CLIENTS, "none") },
      service16Int8: { label: `service, REST, ${LIMIT_CLIENTS} clients x ${BATCH} texts, default variant`, precision: "int8", run: serviceRunner("service16Int8", LIMIT_CLIENTS, undefined) },
    };

    progress("peer: warm-up (one batch per runner)");
    await extractor(batches[0], { pooling: "mean", normalize: true });
    await embed(batches[0], "none");
    await embed(batches[0], undefined);
    await limits.fp32.run(sortedBatches.slice(-1));
    await limits.int8.run(sortedBatches.slice(-1));

    // Rounds alternate the runners, so a change in the machine's background load moves them all.
    const seconds = new Map<PeerRunnerId, number[]>(PEER_RUNNERS.map((id) => [id, []]));
    const kept: Partial<Record<PeerRunnerId, number[][]>> = {};
    for (let round = 0; round < runs; round++) {
      for (const id of PEER_RUNNERS) {
        const vectors = round === 0 && (id === "transformersJs" || id === "service4Fp32" || id === "service4Int8") ? (kept[id] = []) : undefined;
        const started = performance.now();
        await runners[id].run(vectors);
        const elapsed = (performance.now() - started) / 1000;
        seconds.get(id)?.push(elapsed);
        progress(`  round ${round + 1}: ${id} ${(texts.length / elapsed).toFixed(0)} texts/s`);
      }
    }

    const ratioOf = (runner: PeerRunnerId, baseline: PeerRunnerId, target: number): PeerRatio => {
      const roundRatios = (seconds.get(baseline) ?? []).map((baselineSeconds, round) => baselineSeconds / (seconds.get(runner) ?? [])[round]);
      const ratio = median(roundRatios);
      return { runner, baseline, ratio, roundRatios, target, met: ratio >= target };
    };
    const rowsPastWindow = (vectors: number[][] | undefined, past: boolean) => (vectors ?? []).filter((_, row) => (tokenCounts[row] > MINILM.window) === past);
    const int8MinCosine = minCosine(kept.service4Int8 ?? [], kept.service4Fp32 ?? []);
    return {
      model: "all-MiniLM-L6-v2 shape, random weights (6 x 384, FFN 1536, vocab 30522)",
      modelMb,
      transformersJsVersion: transformers.env.version,
      corpus,
      rounds: runs,
      runners: PEER_RUNNERS.map((id) => {
        const runsSeconds = seconds.get(id) ?? [];
        const counters = batchCounters.get(id);
        const seen = precisionsSeen.get(id);
        return {
          id,
          label: runners[id].label,
          precision: seen ? [...seen].join("+") : runners[id].precision,
          textsPerSecond: texts.length / median(runsSeconds),
          runsSeconds,
          ...(counters && counters.batches > 0 ? { batchStats: batchStats(counters) } : {}),
        };
      }),
      ratios: [
        ratioOf("service4Fp32", "transformersJs", 3.5),
        ratioOf("service4Int8", "transformersJs", 5),
        ratioOf("service16Fp32", "limitFp32", 0.8),
        ratioOf("service16Int8", "limitInt8", 0.8),
      ],
      maxAbsDifference: {
        withinWindow: maxAbsDifference(rowsPastWindow(kept.service4Fp32, false), rowsPastWindow(kept.transformersJs, false)),
        pastWindow: maxAbsDifference(rowsPastWindow(kept.service4Fp32, true), rowsPastWindow(kept.transformersJs, true)),
      },
      int8MinCosine,
      int8MinCosineTarget: INT8_MIN_COSINE_TARGET,
    };
  } finally {
    await extractor.dispose();
    await limits.fp32.release();
    await limits.int8.release();
    await running.stop();
  }
}

/** The comparison as a markdown section: the corpus, one table of runners and targets, the vector checks. */
export function formatPeerResult(result: PeerResult): string {
  const verdict = (met: boolean) => (met ? "met" : "MISSED");
  const { corpus } = result;
  const rows = result.runners.map((runner) => {
    const ratio = result.ratios.find((candidate) => candidate.runner === runner.id);
    const baseline = ratio && result.runners.find((candidate) => candidate.id === ratio.baseline);
    const compared = ratio && baseline
      ? `${ratio.ratio.toFixed(2)}x ${baseline.id} (rounds ${ratio.roundRatios.map((value) => value.toFixed(2)).join(", ")}) | >= ${ratio.target}x | ${verdict(ratio.met)}`
      : " | | ";
    const stats = runner.batchStats;
    const batches = stats
      ? `${stats.batches} batches, ${stats.meanTexts.toFixed(1)} texts and ${stats.meanPaddedTokens.toFixed(0)} padded tokens each, ${(stats.paddingShare * 100).toFixed(0)}% padding`
      : "";
    return `| ${runner.id}: ${runner.label} | ${runner.precision} | ${runner.textsPerSecond.toFixed(0)} | ${compared} | ${batches} |`;
  });
  const cosineMet = result.int8MinCosine >= result.int8MinCosineTarget;
  return [
    "## Peer: transformers.js, the service and the limit (MiniLM-shaped model)",
    "",
    `${result.model}; ${result.modelMb.toFixed(0)} MB ONNX (fp32). ${corpus.texts} mixed texts (bench/mixed-texts.ts) in a fixed shuffled order: mean ${corpus.meanTokens.toFixed(1)} tokens (transformers.js tokenizer, no truncation; ${corpus.meanTokensInWindow.toFixed(1)} within the window), ${(corpus.pastWindowShare * 100).toFixed(1)}% past ${corpus.window} tokens (longest ${corpus.maxTokens}), truncated to ${corpus.window} by every runner. Medians of ${result.rounds} rounds, each running every runner in turn; ratios are medians of per-round ratios.`,
    "",
    "| runner | precision | texts/s | ratio | target | verdict | service batches (all rounds) |",
    "|---|---|---|---|---|---|---|",
    ...rows,
    "",
    `Vectors (first round): service fp32 vs transformers.js max abs difference ${result.maxAbsDifference.withinWindow.toExponential(1)} on the texts within the window, ${result.maxAbsDifference.pastWindow.toExponential(1)} on those past it (transformers.js's truncation drops the final [SEP], the service keeps it); service int8 vs service fp32 least cosine ${result.int8MinCosine.toFixed(4)} (target >= ${result.int8MinCosineTarget}: ${verdict(cosineMet)}).`,
    "",
  ].join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({ options: { runs: { type: "string", default: "3" }, json: { type: "string" } } });
  const result = await runPeerComparison({ runs: Number(values.runs), progress: (message) => process.stderr.write(`[peer] ${message}\n`) });
  console.log(formatPeerResult(result));
  if (values.json) await writeFile(values.json, `${JSON.stringify(result, null, 1)}\n`);
}
