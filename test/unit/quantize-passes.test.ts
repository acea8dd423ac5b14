import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import type { ModelProto } from "../../gen/onnx/onnx_pb.js";
import { createGraphEditor } from "../../src/onnx/graph-edit.js";
import { createGraphBuilder, valueInfo } from "../../src/onnx/graph-builder.js";
import { buildModel, encodeModel } from "../../src/onnx/model-io.js";
import { float16BitsToFloat32 } from "../../src/onnx/quantize/float16.js";
import { convertWeightsToFloat16 } from "../../src/onnx/quantize/fp16-weights.js";
import { quantizeMatMulsInt4, quantizeWeightsBlockwise4 } from "../../src/onnx/quantize/int4-blockwise.js";
import { quantizeMatMulsInt8, quantizeWeightsPerColumn } from "../../src/onnx/quantize/int8-dynamic.js";
import { cosineSimilarity } from "../../src/onnx/quantize/quality-gate.js";
import { DataType, readTensor } from "../../src/onnx/tensor.js";

function seeded(seed: number) {
  let state = seed;
  return () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
}

/** y = x @ W (+ bias) for x [batch, rows, K]; a second MatMul on the same x when `twin` is set. */
function matmulModel(k: number, n: number, options: { bias?: Float32Array; twin?: boolean; seed?: number; opset?: number } = {}) {
  const random = seeded(options.seed ?? 1);
  const weights = Float32Array.from({ length: k * n }, () => random());
  const g = createGraphBuilder("matmul");
  const x = g.input(valueInfo("x", DataType.FLOAT, ["batch", "rows", k]));
  let y = g.op("MatMul", { inputs: [x, g.constFloat([k, n], weights, "weight")] });
  if (options.bias) y = g.op("Add", { inputs: [y, g.constFloat([n], options.bias, "bias")] });
  g.op("Identity", { inputs: [y], outputs: ["y"] });
  g.output(valueInfo("y", DataType.FLOAT, ["batch", "rows", n]));
  if (options.twin) {
    g.op("MatMul", { inputs: [x, g.constFloat([k, n], weights.map((value) => -value), "twin_weight")], outputs: ["z"] });
    g.output(valueInfo("z", DataType.FLOAT, ["batch", "rows", n]));
  }
  return { model: buildModel(g, { opset: options.opset }), weights };
}

async function run(model: ModelProto, x: Float32Array, dims: number[], output = "y"): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: 2, graphOptimizationLevel: "all" });
  try {
    return (await session.run({ x: new ort.Tensor("float32", x, dims) }))[output].data as Float32Array;
  } finally {
    await session.release();
  }
}

function exactProduct(x: Float32Array, weights: ArrayLike<number>, k: number, n: number, bias?: Float32Array): Float64Array {
  const rows = x.length / k;
  const y = new Float64Array(rows * n);
  for (let row = 0; row < rows; row++) {
    for (let inner = 0; inner < k; inner++) {
      const a = x[row * k + inner];
      for (let column = 0; column < n; column++) y[row * n + column] += a * weights[inner * n + column];
    }
    if (bias) for (let column = 0; column < n; column++) y[row * n + column] += bias[column];
  }
  return y;
}

const opTypes = (model: ModelProto) => model.graph!.node.map((node) => node.opType);

describe("graph editor", () => {
  it("generates names unused anywhere and puts added nodes before their consumers", () => {
    const { model } = matmulModel(4, 3);
    const editor = createGraphEditor(model);
    const taken = new Set(model.graph!.node.flatMap((node) => [...node.input, ...node.output, node.name]));
    const name = editor.uniqueName("identity");
    expect(taken.has(name)).toBe(false);
    const matmul = editor.nodes.find((node) => node.opType === "MatMul")!;
    const negated = editor.add("Neg", [matmul.input[0]]);
    editor.add("MatMul", [negated, matmul.input[1]], { outputs: [matmul.output[0]] });
    editor.removeNode(matmul);
    const edited = editor.finish();
    expect(opTypes(edited)).toEqual(["Neg", "MatMul", "Identity"]);
    expect(opTypes(model)).toEqual(["MatMul", "Identity"]);
  });
});

describe("fp16 weights", () => {
  it("stores large weights as float16 and computes exactly what fp32 does with those weights", async () => {
    const k = 64;
    const n = 32;
    const { model } = matmulModel(k, n, { bias: new Float32Array(n).fill(0.25) });
    const { model: converted, converted: count } = convertWeightsToFloat16(model, { minElements: 1024 });
    expect(count).toBe(1);
    const stored = converted.graph!.initializer.find((tensor) => tensor.dataType === DataType.FLOAT16)!;
    expect(stored.dims.map(Number)).toEqual([k, n]);
    expect(converted.graph!.initializer.find((tensor) => tensor.name === "bias_1")!.dataType).toBe(DataType.FLOAT);
    expect(opTypes(converted)[0]).toBe("Cast");

    const rounded = Array.from(readTensor(stored).data as Uint16Array, float16BitsToFloat32);
    const x = Float32Array.from({ length: 2 * 5 * k }, seeded(9));
    const actual = await run(converted, x, [2, 5, k]);
    const expected = exactProduct(x, rounded, k, n, new Float32Array(n).fill(0.25));
    actual.forEach((value, index) => expect(Math.abs(value - expected[index])).toBeLessThan(1e-5));
  });
});

describe("int8 dynamic quantization", () => {
  it("quantizes weights symmetrically per output column", () => {
    const k = 50;
    const n = 7;
    const zeroColumn = 2;
    const weights = Float32Array.from({ length: k * n }, seeded(3)).map((value, index) => (index % n === zeroColumn ? 0 : value));
    const { values, scales } = quantizeWeightsPerColumn(weights, k, n);
    expect(scales[zeroColumn]).toBe(1);
    for (let column = 0; column < n; column++) {
      let peak = 0;
      for (let row = 0; row < k; row++) {
        const index = row * n + column;
        peak = Math.max(peak, Math.abs(values[index]));
        expect(Math.abs(values[index] * scales[column] - weights[index])).toBeLessThanOrEqual(scales[column] / 2 + 1e-7);
      }
      expect(peak).toBe(column === zeroColumn ? 0 : 127);
    }
  });

  it("scales each activation row by itself: wide magnitudes, a zero row, and a bias that must not be scaled", async () => {
    const k = 96;
    const n = 40;
    const bias = Float32Array.from({ length: n }, (_, index) => 5 + index);
    const { model, weights } = matmulModel(k, n, { bias });
    const { model: quantized, quantized: count } = quantizeMatMulsInt8(model);
    expect(count).toBe(1);
    expect(opTypes(quantized)).toContain("MatMulIntegerToFloat");
    expect(opTypes(quantized)).not.toContain("MatMul");
    expect(quantized.graph!.initializer.some((tensor) => tensor.name === "weight_1")).toBe(false);

    const random = seeded(5);
    const rows = 6;
    const x = new Float32Array(rows * k);
    const magnitudes = [1e-3, 1, 1e3, 0, 30, 0.2];
    for (let row = 0; row < rows; row++) for (let inner = 0; inner < k; inner++) x[row * k + inner] = random() * magnitudes[row];
    const actual = await run(quantized, x, [2, 3, k]);
    const expected = exactProduct(x, weights, k, n, bias);
    const withoutBias = exactProduct(x, weights, k, n);
    for (let row = 0; row < rows; row++) {
      const slice = (values: ArrayLike<number>) => Array.from({ length: n }, (_, column) => values[row * n + column]);
      if (magnitudes[row] === 0) {
        expect(slice(actual)).toEqual(Array.from(bias));
        continue;
      }
      const residual = slice(actual).map((value, column) => value - bias[column]);
      expect(cosineSimilarity(residual, slice(withoutBias))).toBeGreaterThan(0.9995);
      const scale = Math.max(...slice(withoutBias).map(Math.abs));
      slice(actual).forEach((value, column) => expect(Math.abs(value - expected[row * n + column])).toBeLessThan(0.02 * scale + 1e-6));
    }
  });

  it("gives a row the same bits alone as inside a batch", async () => {
    const k = 64;
    const { model } = matmulModel(k, 48, { bias: new Float32Array(48).fill(1) });
    const quantized = quantizeMatMulsInt8(model).model;
    const x = Float32Array.from({ length: 32 * 7 * k }, seeded(11)).map((value, index) => value * (1 + (Math.floor(index / k) % 9) ** 2));
    const batch = await run(quantized, x, [32, 7, k]);
    for (const row of [0, 13, 31]) {
      const alone = await run(quantized, x.slice(row * 7 * k, (row + 1) * 7 * k), [1, 7, k]);
      expect(Array.from(alone)).toEqual(Array.from(batch.slice(row * 7 * 48, (row + 1) * 7 * 48)));
    }
  });

  it("quantizes activations read by several MatMuls once", () => {
    const { model } = matmulModel(16, 8, { twin: true });
    const { model: quantized, quantized: count } = quantizeMatMulsInt8(model);
    expect(count).toBe(2);
    expect(opTypes(quantized).filter((op) => op === "QuantizeLinear")).toHaveLength(1);
    expect(opTypes(quantized).filter((op) => op === "MatMulIntegerToFloat")).toHaveLength(2);
  });

  it("emits opset-appropriate reductions (axes as an input from opset 18) and refuses opsets below 13", async () => {
    const k = 32;
    const { model, weights } = matmulModel(k, 8, { opset: 18 });
    const quantized = quantizeMatMulsInt8(model).model;
    const reduceMax = quantized.graph!.node.find((node) => node.opType === "ReduceMax")!;
    expect(reduceMax.input).toHaveLength(2);
    const x = Float32Array.from({ length: 4 * k }, seeded(21));
    const actual = await run(quantized, x, [1, 4, k]);
    const expected = exactProduct(x, weights, k, 8);
    expect(cosineSimilarity(actual, expected)).toBeGreaterThan(0.9999);
    expect(() => quantizeMatMulsInt8(matmulModel(k, 8, { opset: 12 }).model)).toThrow(/opset 12/);
  });

  it("leaves excluded MatMuls in float32", () => {
    const { model } = matmulModel(16, 8, { twin: true });
    const { model: quantized, quantized: count } = quantizeMatMulsInt8(model, { exclude: ["twin_weight_1"] });
    expect(count).toBe(1);
    expect(opTypes(quantized).filter((op) => op === "MatMul")).toHaveLength(1);
  });
});

/** Independent decoding of the MatMulNBits layout: W[k, n] = (nibble - zero point) * scale. */
function dequantizeNBits(packed: Uint8Array, scales: Float32Array, zeroPoints: Uint8Array, k: number, n: number, blockSize: number): Float64Array {
  const blocks = Math.ceil(k / blockSize);
  const weights = new Float64Array(k * n);
  for (let column = 0; column < n; column++) {
    for (let row = 0; row < k; row++) {
      const block = Math.floor(row / blockSize);
      const byte = packed[(column * blocks + block) * (blockSize / 2) + Math.floor((row % blockSize) / 2)];
      const nibble = row % 2 === 0 ? byte & 0x0f : byte >> 4;
      const zeroByte = zeroPoints[column * Math.ceil(blocks / 2) + Math.floor(block / 2)];
      const zeroPoint = block % 2 === 0 ? zeroByte & 0x0f : zeroByte >> 4;
      weights[row * n + column] = (nibble - zeroPoint) * scales[column * blocks + block];
    }
  }
  return weights;
}

describe("int4 block-wise quantization (MatMulNBits)", () => {
  for (const { k, n, blockSize, accuracyLevel } of [
    { k: 64, n: 24, blockSize: 32, accuracyLevel: 0 as const },
    { k: 40, n: 7, blockSize: 16, accuracyLevel: 0 as const },
    { k: 40, n: 7, blockSize: 16, accuracyLevel: 4 as const },
    { k: 96, n: 33, blockSize: 32, accuracyLevel: 4 as const },
  ]) {
    it(`matches a dequantized float reference (K ${k}, N ${n}, block ${blockSize}, accuracy level ${accuracyLevel})`, async () => {
      const { model, weights } = matmulModel(k, n, { seed: k + n });
      const blocksOf = quantizeWeightsBlockwise4(weights, k, n, blockSize);
      const dequantized = dequantizeNBits(blocksOf.packed, blocksOf.scales, blocksOf.zeroPoints, k, n, blockSize);
      for (let column = 0; column < n; column++) {
        const original = Array.from({ length: k }, (_, row) => weights[row * n + column]);
        const restored = Array.from({ length: k }, (_, row) => dequantized[row * n + column]);
        expect(cosineSimilarity(original, restored)).toBeGreaterThan(0.98);
      }

      const { model: quantized, quantized: count } = quantizeMatMulsInt4(model, { blockSize, accuracyLevel });
      expect(count).toBe(1);
      const node = quantized.graph!.node.find((candidate) => candidate.opType === "MatMulNBits")!;
      expect(node.domain).toBe("com.microsoft");
      expect(quantized.opsetImport.some((opset) => opset.domain === "com.microsoft")).toBe(true);
      const initializer = (name: string) => readTensor(quantized.graph!.initializer.find((tensor) => tensor.name === name)!);
      expect(initializer(node.input[1]).dims).toEqual([n, Math.ceil(k / blockSize), blockSize / 2]);
      expect(initializer(node.input[2]).dims).toEqual([n, Math.ceil(k / blockSize)]);
      expect(initializer(node.input[3]).dims).toEqual([n, Math.ceil(Math.ceil(k / blockSize) / 2)]);

      const x = Float32Array.from({ length: 3 * 4 * k }, seeded(17));
      const actual = await run(quantized, x, [3, 4, k]);
      const expected = exactProduct(x, dequantized, k, n);
      // Level 0 computes in float32; level 4 also rounds each activation block to int8.
      const tolerance = accuracyLevel === 0 ? 1e-5 : 2e-2;
      const scale = Math.max(...Array.from(expected, Math.abs));
      actual.forEach((value, index) => expect(Math.abs(value - expected[index])).toBeLessThan(tolerance * scale));
    });
  }
});
