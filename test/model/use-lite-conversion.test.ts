import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { readTensor } from "../../src/onnx/tensor.js";
import { encodeModel } from "../../src/onnx/model-io.js";
import type { ModelProto } from "../../gen/onnx/onnx_pb.js";
import {
  USE_LITE_DIMENSIONS,
  USE_LITE_MAX_TOKENS,
  USE_LITE_OUTPUT,
  convertUseLite,
} from "../../src/models/use-lite/convert.js";

interface ReferenceEntry {
  text: string;
  tokenIds: number[];
  tokenCount: number;
  embeddingContext: "alone" | "batch";
  embedding: number[];
}

const reference = JSON.parse(
  readFileSync(new URL("../fixtures/use-lite-reference.json", import.meta.url), "utf8"),
) as { maxTokens: number; sentences: ReferenceEntry[] };

/** What our tokenizer will feed the model: the reference ids cut to the 128-token window. */
const windowed = (entry: ReferenceEntry) => entry.tokenIds.slice(0, USE_LITE_MAX_TOKENS);

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    normA += a[i] * a[i];
    normB += b[i] * b[i];
  }
  return dot / Math.sqrt(normA * normB);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** A deterministic shuffle (LCG) so batches mix lengths the same way on every run. */
function shuffled<T>(items: T[], seed: number): T[] {
  const copy = items.slice();
  let state = seed;
  for (let i = copy.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    const j = state % (i + 1);
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

interface PaddingOptions {
  /** Sequence length of the batch; defaults to the longest row (at least 1). */
  width?: number;
  /** Id written at padded positions (the model must ignore it). */
  padId?: number;
  /** Put the padding before the tokens (the window is still the first 128 columns). */
  left?: boolean;
}

describe("USE-Lite conversion vs the TF.js reference", () => {
  let model: ModelProto;
  let session: ort.InferenceSession;

  const embed = async (rows: number[][], options: PaddingOptions = {}): Promise<Float32Array[]> => {
    const width = options.width ?? Math.max(1, ...rows.map((row) => row.length));
    const ids = new BigInt64Array(rows.length * width).fill(BigInt(options.padId ?? 0));
    const mask = new BigInt64Array(rows.length * width);
    rows.forEach((row, b) => {
      const offset = b * width + (options.left ? width - row.length : 0);
      row.forEach((id, s) => {
        ids[offset + s] = BigInt(id);
        mask[offset + s] = 1n;
      });
    });
    const outputs = await session.run({
      input_ids: new ort.Tensor("int64", ids, [rows.length, width]),
      attention_mask: new ort.Tensor("int64", mask, [rows.length, width]),
    });
    const data = outputs[USE_LITE_OUTPUT].data as Float32Array;
    expect(outputs[USE_LITE_OUTPUT].dims).toEqual([rows.length, USE_LITE_DIMENSIONS]);
    return rows.map((_, b) => data.slice(b * USE_LITE_DIMENSIONS, (b + 1) * USE_LITE_DIMENSIONS));
  };

  beforeAll(async () => {
    model = await convertUseLite();
    session = await ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: 1 });
  });

  it("covers the sentence set the brief asks for", () => {
    const counts = reference.sentences.map((entry) => entry.tokenCount);
    expect(reference.sentences.length).toBeGreaterThanOrEqual(100);
    expect(Math.min(...counts)).toBe(0);
    expect(counts.filter((count) => count > USE_LITE_MAX_TOKENS).length).toBeGreaterThanOrEqual(5);
    expect(reference.sentences.some((entry) => entry.text.length >= 10_000)).toBe(true);
  });

  it("matches the reference vectors (cosine >= 0.99999) with each text alone", async () => {
    const cosines: number[] = [];
    for (const entry of reference.sentences) {
      const [vector] = await embed([windowed(entry)]);
      cosines.push(cosine(vector, entry.embedding));
    }
    const worst = Math.min(...cosines);
    const worstText = reference.sentences[cosines.indexOf(worst)].text.slice(0, 40);
    console.log(`fp32 vs TF.js reference on ${cosines.length} sentences: min cosine ${worst} (${JSON.stringify(worstText)})`);
    expect(worst, `worst: ${JSON.stringify(worstText)}`).toBeGreaterThanOrEqual(0.99999);
  });

  it("reads only the first 128 tokens of a longer input, as the TF.js graph does", async () => {
    const long = reference.sentences.filter((entry) => entry.tokenCount > USE_LITE_MAX_TOKENS);
    for (const entry of long.slice(0, 4)) {
      const [full] = await embed([entry.tokenIds]);
      const [cut] = await embed([windowed(entry)]);
      expect(maxAbsDiff(full, cut)).toBe(0);
    }
  });

  it("gives each text the same vector alone and inside batches of 32 mixed-length texts (max abs <= 1e-6)", async () => {
    const entries = shuffled(reference.sentences, 20240611);
    const alone = new Map<ReferenceEntry, Float32Array>();
    for (const entry of entries) alone.set(entry, (await embed([windowed(entry)]))[0]);
    let worst = 0;
    for (let start = 0; start < entries.length; start += 32) {
      const batch = entries.slice(start, start + 32);
      while (batch.length < 32) batch.push(entries[batch.length]);
      const lengths = new Set(batch.map((entry) => Math.min(entry.tokenCount, USE_LITE_MAX_TOKENS)));
      expect(lengths.size).toBeGreaterThan(8);
      const vectors = await embed(batch.map(windowed));
      batch.forEach((entry, index) => {
        worst = Math.max(worst, maxAbsDiff(vectors[index], alone.get(entry)!));
      });
    }
    expect(worst).toBeLessThanOrEqual(1e-6);
  });

  it("ignores padding: extra padded columns, garbage ids under mask 0 and left padding change nothing", async () => {
    const batch = shuffled(reference.sentences, 7).slice(0, 16).map(windowed);
    const tight = await embed(batch);
    const variants = [
      await embed(batch, { width: USE_LITE_MAX_TOKENS }),
      await embed(batch, { width: USE_LITE_MAX_TOKENS, padId: 4321 }),
      await embed(batch, { width: USE_LITE_MAX_TOKENS + 40, padId: 17 }),
      await embed(batch, { width: USE_LITE_MAX_TOKENS, padId: 17, left: true }),
    ];
    for (const padded of variants) {
      padded.forEach((vector, index) => expect(maxAbsDiff(vector, tight[index])).toBeLessThanOrEqual(1e-6));
    }
  });

  it("gives a text with no tokens the reference's vector for an empty text, whatever its batch", async () => {
    const empty = reference.sentences.find((entry) => entry.tokenCount === 0)!;
    const [alone] = await embed([[]]);
    const [inBatch] = await embed([[], [341, 4125, 311]]);
    expect(cosine(alone, empty.embedding)).toBeGreaterThanOrEqual(0.99999);
    expect(maxAbsDiff(alone, inBatch)).toBeLessThanOrEqual(1e-6);
  });

  it("keeps every weight product as MatMul(activation, fp32 initializer [K, N]) + Add(bias) for the quantizer", () => {
    const graph = model.graph!;
    const initializers = new Map(graph.initializer.map((tensor) => [tensor.name, tensor]));
    const weightMatMuls = graph.node.filter((node) => node.opType === "MatMul" && initializers.has(node.input[1]));
    expect(weightMatMuls).toHaveLength(10);
    for (const matMul of weightMatMuls) {
      const weight = readTensor(initializers.get(matMul.input[1])!);
      expect(weight.dims).toHaveLength(2);
      expect(initializers.has(matMul.input[0])).toBe(false);
      const consumer = graph.node.filter((node) => node.input.includes(matMul.output[0]));
      expect(consumer.map((node) => node.opType)).toEqual(["Add"]);
      const bias = initializers.get(consumer[0].input.find((input) => input !== matMul.output[0])!);
      expect(bias && readTensor(bias).dims).toEqual([weight.dims[1]]);
    }
    expect(model.opsetImport.find((opset) => opset.domain === "")?.version).toBe(17n);
  });
});
