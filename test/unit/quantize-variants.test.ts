import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGraphBuilder, valueInfo } from "../../src/onnx/graph-builder.js";
import { buildModel, encodeModel, readModel } from "../../src/onnx/model-io.js";
import { buildPrecisionVariants, toManifestVariants, type VariantBuildResult } from "../../src/onnx/quantize/build-variants.js";
import { collectCalibrationRows, judgeQuality, measureBatchDependence, type Feeds } from "../../src/onnx/quantize/quality-gate.js";
import { DataType } from "../../src/onnx/tensor.js";
import { paddedFeeds, writeTinyBertModel, writeTinyDecoderModel, type TinyModelInfo } from "../support/tiny-models.js";

function randomSequences(count: number, vocabSize: number, seed: number, firstId = 5): number[][] {
  let state = seed;
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32;
  };
  return Array.from({ length: count }, () => Array.from({ length: 1 + Math.floor(next() * 40) }, () => firstId + Math.floor(next() * (vocabSize - firstId - 1))));
}

const exists = (path: string) => access(path).then(() => true, () => false);

/** A token vector as an embedding is compared: L2-normalized. */
function normalized(vector: Float32Array): Float64Array {
  const norm = Math.hypot(...vector);
  return Float64Array.from(vector, (value) => value / norm);
}

function maxAbsDifference(a: Float64Array, b: Float64Array): number {
  return a.reduce((worst, value, index) => Math.max(worst, Math.abs(value - b[index])), 0);
}

describe("quality gate rows", () => {
  it("pools [batch, sequence, dims] outputs over real tokens, with left or right padding", async () => {
    const g = createGraphBuilder("identity");
    g.input(valueInfo("x", DataType.FLOAT, ["batch", "sequence", 2]));
    g.input(valueInfo("attention_mask", DataType.INT64, ["batch", "sequence"]));
    g.op("Identity", { inputs: ["x"], outputs: ["y"] });
    g.output(valueInfo("y", DataType.FLOAT, ["batch", "sequence", 2]));
    const session = await ort.InferenceSession.create(encodeModel(buildModel(g)));
    // Text 0 right-padded (tokens 1,2), text 1 left-padded (tokens 3,4); padding rows hold 100.
    const feeds: Feeds = {
      x: new ort.Tensor("float32", Float32Array.from([1, 1, 2, 2, 100, 100, 100, 100, 3, 3, 4, 4]), [2, 3, 2]),
      attention_mask: new ort.Tensor("int64", BigInt64Array.from([1n, 1n, 0n, 0n, 1n, 1n]), [2, 3]),
    };
    const rows = async (pooling?: "mean" | "cls" | "last-token") =>
      (await collectCalibrationRows(session, [feeds], { pooling })).rows.map((row) => Array.from(row));
    expect(await rows("mean")).toEqual([[1.5, 1.5], [3.5, 3.5]]);
    expect(await rows("cls")).toEqual([[1, 1], [3, 3]]);
    expect(await rows("last-token")).toEqual([[2, 2], [4, 4]]);
    expect(await rows()).toEqual([[1, 1], [2, 2], [3, 3], [4, 4]]);
    expect((await collectCalibrationRows(session, () => [feeds, feeds])).texts).toBe(4);
    await session.release();
  });

  it("measures batch dependence: zero for a per-row model, large when rows see their batch-mates", async () => {
    const g = createGraphBuilder("batch_mates");
    g.input(valueInfo("x", DataType.FLOAT, ["batch", 3]));
    g.op("Relu", { inputs: ["x"], outputs: ["own"] });
    g.op("Sub", { inputs: ["x", g.op("ReduceMean", { inputs: ["x"], attributes: { axes: { ints: [0] }, keepdims: { int: 1 } } })], outputs: ["shared"] });
    g.output(valueInfo("own", DataType.FLOAT, ["batch", 3]));
    g.output(valueInfo("shared", DataType.FLOAT, ["batch", 3]));
    const session = await ort.InferenceSession.create(encodeModel(buildModel(g)));
    const feeds = [{ x: new ort.Tensor("float32", Float32Array.from([1, 2, 3, -1, 5, 2, 4, 4, 4]), [3, 3]) }];
    expect(await measureBatchDependence(session, feeds, { output: "own" })).toBe(0);
    expect(await measureBatchDependence(session, feeds, { output: "shared" })).toBeGreaterThan(0.1);
    await session.release();
  });

  it("judges min and mean cosine and says why a candidate fails", () => {
    const reference = { rows: [Float32Array.of(1, 0), Float32Array.of(0, 1)], texts: 2 };
    const close = { rows: [Float32Array.of(1, 0.01), Float32Array.of(0, 1)], texts: 2 };
    const far = { rows: [Float32Array.of(1, 1), Float32Array.of(0, 1)], texts: 2 };
    expect(judgeQuality(reference, close, { min: 0.999, mean: 0.9999 }).passed).toBe(true);
    const failed = judgeQuality(reference, far, { min: 0.99, mean: 0.99 });
    expect(failed.passed).toBe(false);
    expect(failed.minCosine).toBeCloseTo(Math.SQRT1_2, 6);
    expect(failed.reason).toMatch(/min cosine 0\.707107 < 0\.99; mean cosine 0\.853553 < 0\.99/);
    const broken = judgeQuality(reference, { rows: [Float32Array.of(Number.NaN, 0), Float32Array.of(0, 1)], texts: 2 }, { min: 0.5 });
    expect(broken.passed).toBe(false);
    expect(broken.reason).toMatch(/non-finite/);
  });
});

interface Built {
  info: TinyModelInfo;
  results: VariantBuildResult[];
  sequences: number[][];
}

describe.each([
  { kind: "bert", paddingSides: ["right"] as const },
  { kind: "decoder", paddingSides: ["left", "right"] as const },
])("precision variants of the tiny $kind model", ({ kind, paddingSides }) => {
  let dir: string;
  let built: Built;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `sutra-variants-${kind}-`));
    const info = kind === "bert" ? await writeTinyBertModel(dir, { pooling: "mean" }) : await writeTinyDecoderModel(dir);
    await writeFile(join(dir, "onnx", "model_int4.onnx"), "stale");
    const calibration = randomSequences(48, info.vocabSize, 7);
    const feeds = () => [0, 16, 32].map((start) =>
      paddedFeeds(calibration.slice(start, start + 16), { inputs: info.inputs, padTokenId: info.padTokenId, paddingSide: info.paddingSide }));
    const results = await buildPrecisionVariants(dir, {
      calibrationFeeds: feeds,
      pooling: info.pooling,
      thresholds: { int4: { min: 1.5 } },
    });
    built = { info, results, sequences: randomSequences(32, info.vocabSize, 99) };
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes the variants that pass their gate next to onnx/model.onnx", async () => {
    const byPrecision = Object.fromEntries(built.results.map((result) => [result.precision, result]));
    for (const precision of ["fp16", "int8"] as const) {
      const result = byPrecision[precision];
      expect(result.written, result.reason).toBe(true);
      expect(result.file).toBe(`onnx/model_${precision}.onnx`);
      expect(result.gate!.passed).toBe(true);
      expect(result.gate!.calibrationTexts).toBe(48);
      expect(result.batchDependence).toBeLessThanOrEqual(1e-6);
      expect(await exists(join(dir, result.file))).toBe(true);
    }
    expect(byPrecision.fp16.gate!.minCosine).toBeGreaterThanOrEqual(0.9999);
    expect(byPrecision.int8.gate!.minCosine).toBeGreaterThanOrEqual(0.995);
    expect(byPrecision.int8.gate!.meanCosine).toBeGreaterThanOrEqual(0.998);
    expect(Object.keys(toManifestVariants(built.results)).sort()).toEqual(["fp16", "int8"]);
  });

  it("stores what int8 leaves in float (the embedding table) as float16, its scales as float32", async () => {
    const model = await readModel(join(dir, "onnx", "model_int8.onnx"));
    const initializers = new Map(model.graph!.initializer.map((tensor) => [tensor.name, tensor]));
    const embeddings = model.graph!.node.find((node) => node.opType === "Gather" && initializers.get(node.input[0]) === undefined);
    expect(embeddings, "the embedding Gather reads a Cast of a float16 table").toBeDefined();
    expect(model.graph!.initializer.some((tensor) => tensor.dataType === DataType.FLOAT16)).toBe(true);
    for (const node of model.graph!.node.filter((candidate) => candidate.opType === "MatMulIntegerToFloat")) {
      expect(initializers.get(node.input[1])!.dataType).toBe(DataType.INT8);
      expect(initializers.get(node.input[3])!.dataType).toBe(DataType.FLOAT);
    }
  });

  it("does not write a variant that fails its gate, removes a stale one, and says why", async () => {
    const int4 = built.results.find((result) => result.precision === "int4")!;
    expect(int4.written).toBe(false);
    expect(int4.gate!.passed).toBe(false);
    expect(int4.reason).toMatch(/quality gate failed: min cosine 0\.\d+ < 1\.5/);
    expect(await exists(join(dir, "onnx", "model_int4.onnx"))).toBe(false);
  });

  it("keeps every precision batch invariant: a text's token vectors alone equal those in a batch of 32 (<= 1e-6)", async () => {
    const { info, sequences } = built;
    const int4 = await buildPrecisionVariants(dir, {
      calibrationFeeds: [paddedFeeds(sequences.slice(0, 4), { inputs: info.inputs, padTokenId: info.padTokenId, paddingSide: info.paddingSide })],
      precisions: ["int4"],
      thresholds: { int4: { min: 0 } },
    });
    expect(int4[0].written).toBe(true);
    for (const file of ["model.onnx", "model_fp16.onnx", "model_int8.onnx", "model_int4.onnx"]) {
      const session = await ort.InferenceSession.create(join(dir, "onnx", file), { intraOpNumThreads: 2, graphOptimizationLevel: "all" });
      for (const paddingSide of paddingSides) {
        const batch = await session.run(paddedFeeds(sequences, { inputs: info.inputs, padTokenId: info.padTokenId, paddingSide }));
        const hidden = batch[info.output].data as Float32Array;
        const length = batch[info.output].dims[1] as number;
        let worst = 0;
        for (const [row, sequence] of sequences.entries()) {
          const alone = (await session.run(paddedFeeds([sequence], { inputs: info.inputs, padTokenId: info.padTokenId })))[info.output].data as Float32Array;
          const offset = (row * length + (paddingSide === "left" ? length - sequence.length : 0)) * info.hiddenSize;
          for (let token = 0; token < sequence.length; token++) {
            const start = token * info.hiddenSize;
            worst = Math.max(worst, maxAbsDifference(
              normalized(alone.subarray(start, start + info.hiddenSize)),
              normalized(hidden.subarray(offset + start, offset + start + info.hiddenSize)),
            ));
          }
        }
        expect(worst, `${file} ${paddingSide} padding`).toBeLessThanOrEqual(1e-6);
      }
      await session.release();
    }
  });
});
