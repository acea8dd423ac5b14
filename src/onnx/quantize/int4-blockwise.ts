import type { ModelProto } from "../../../gen/onnx/onnx_pb.js";
import { createGraphEditor } from "../graph-edit.js";
import { DataType, floatTensor, makeTensor } from "../tensor.js";
import { findWeightMatMuls, removeWeightIfUnused, roundHalfToEven, type MatMulSelection } from "./weight-matmuls.js";

/** Options of {@link quantizeMatMulsInt4}. */
export interface Int4BlockwiseOptions extends MatMulSelection {
  /** Weights per quantization block along K: a power of two >= 16. Default 32. */
  blockSize?: number;
  /**
   * MatMulNBits `accuracy_level`. 0 (default) computes in float32 with the dequantized weights.
   * 4 lets onnxruntime quantize activations to int8 internally; on onnxruntime 1.30 CPU that made
   * a row's result depend on its batch (up to 4e-3 on a tiny decoder) and was no faster here, so
   * it breaks batch invariance and is only for experiments.
   */
  accuracyLevel?: 0 | 1 | 4;
}

/** What {@link quantizeMatMulsInt4} did. */
export interface Int4BlockwiseResult {
  model: ModelProto;
  /** MatMuls rewritten. */
  quantized: number;
}

/** Block-wise 4-bit weights in the layout of com.microsoft MatMulNBits. */
export interface Int4Blocks {
  /** uint8 [N, blocks, blockSize / 2]: along K, element 2i in the low nibble, 2i + 1 in the high one. */
  packed: Uint8Array;
  /** float32 [N, blocks]. */
  scales: Float32Array;
  /** uint8 [N, ceil(blocks / 2)]: block 2i's zero point in the low nibble, 2i + 1's in the high one. */
  zeroPoints: Uint8Array;
  blocks: number;
}

/** Range shrink factors tried per block; the one with the least squared error wins. */
const RANGE_SHRINKS = [1, 0.975, 0.95, 0.925, 0.9, 0.875, 0.85, 0.825];

/**
 * Picks a block's scale and zero point: the block's range, widened to include 0, is shrunk by each
 * factor of {@link RANGE_SHRINKS}; scale = range / 15, zero point = round(-low / scale); the pair
 * with the least squared reconstruction error wins (clipping a few outliers usually beats coarse
 * steps for all the others).
 */
function chooseBlockParameters(values: Float32Array, count: number): { scale: number; zeroPoint: number } {
  let low = 0;
  let high = 0;
  for (let index = 0; index < count; index++) {
    low = Math.min(low, values[index]);
    high = Math.max(high, values[index]);
  }
  if (high === low) return { scale: 1, zeroPoint: 0 };
  let best = { scale: 1, zeroPoint: 0, error: Infinity };
  for (const shrink of RANGE_SHRINKS) {
    const scale = Math.fround(((high - low) * shrink) / 15);
    const zeroPoint = Math.max(0, Math.min(15, roundHalfToEven((-low * shrink) / scale)));
    let error = 0;
    for (let index = 0; index < count; index++) {
      const quantized = Math.max(0, Math.min(15, roundHalfToEven(values[index] / scale) + zeroPoint));
      error += ((quantized - zeroPoint) * scale - values[index]) ** 2;
    }
    if (error < best.error) best = { scale, zeroPoint, error };
  }
  return best;
}

/**
 * Quantizes W [K, N] (row-major) to asymmetric uint4 per block of `blockSize` values of one output
 * column (scale and zero point from {@link chooseBlockParameters}); q = clamp(round(w / scale) +
 * zero point, 0, 15), dequantized w = (q - zero point) * scale. Padding past K (when K is not a
 * multiple of the block size) stores the zero point, i.e. exact zeros.
 */
export function quantizeWeightsBlockwise4(weights: Float32Array, k: number, n: number, blockSize: number): Int4Blocks {
  if (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) throw new Error(`int4: block size ${blockSize} is not a power of two >= 16`);
  const blocks = Math.ceil(k / blockSize);
  const blobSize = blockSize / 2;
  const zeroPointBytes = Math.ceil(blocks / 2);
  const packed = new Uint8Array(n * blocks * blobSize);
  const scales = new Float32Array(n * blocks);
  const zeroPoints = new Uint8Array(n * zeroPointBytes);
  const values = new Float32Array(blockSize);
  const quantized = new Uint8Array(blockSize);
  for (let column = 0; column < n; column++) {
    for (let block = 0; block < blocks; block++) {
      const start = block * blockSize;
      const count = Math.min(k, start + blockSize) - start;
      for (let index = 0; index < count; index++) values[index] = weights[(start + index) * n + column];
      const { scale, zeroPoint } = chooseBlockParameters(values, count);
      quantized.fill(zeroPoint);
      for (let index = 0; index < count; index++) {
        quantized[index] = Math.max(0, Math.min(15, roundHalfToEven(values[index] / scale) + zeroPoint));
      }
      const blob = (column * blocks + block) * blobSize;
      for (let index = 0; index < blobSize; index++) packed[blob + index] = quantized[2 * index] | (quantized[2 * index + 1] << 4);
      scales[column * blocks + block] = scale;
      zeroPoints[column * zeroPointBytes + (block >> 1)] |= zeroPoint << ((block & 1) * 4);
    }
  }
  return { packed, scales, zeroPoints, blocks };
}

/**
 * Returns a copy of `model` where every `MatMul(x, W)` with a constant float32 W [K, N] becomes
 * com.microsoft `MatMulNBits` (bits 4, block-wise scales and packed zero points). Activations stay
 * float32; the graph imports the `com.microsoft` domain (onnxruntime only).
 */
export function quantizeMatMulsInt4(model: ModelProto, options: Int4BlockwiseOptions = {}): Int4BlockwiseResult {
  const blockSize = options.blockSize ?? 32;
  const editor = createGraphEditor(model);
  const matmuls = findWeightMatMuls(editor, options);
  if (matmuls.length > 0) editor.requireOpset("com.microsoft", 1);
  for (const matmul of matmuls) {
    const { packed, scales, zeroPoints, blocks } = quantizeWeightsBlockwise4(matmul.weights, matmul.k, matmul.n, blockSize);
    const inputs = [
      matmul.activations,
      editor.addInitializer(`${matmul.weightName}_q4`, makeTensor("", { dataType: DataType.UINT8, dims: [matmul.n, blocks, blockSize / 2], data: packed })),
      editor.addInitializer(`${matmul.weightName}_scales`, floatTensor("", [matmul.n, blocks], scales)),
      editor.addInitializer(`${matmul.weightName}_zero_points`, makeTensor("", { dataType: DataType.UINT8, dims: [matmul.n, Math.ceil(blocks / 2)], data: zeroPoints })),
    ];
    editor.add("MatMulNBits", inputs, {
      domain: "com.microsoft",
      outputs: [matmul.node.output[0]],
      attributes: {
        K: { int: matmul.k },
        N: { int: matmul.n },
        bits: { int: 4 },
        block_size: { int: blockSize },
        accuracy_level: { int: options.accuracyLevel ?? 0 },
      },
    });
    editor.removeNode(matmul.node);
    removeWeightIfUnused(editor, matmul.weightName);
  }
  return { model: editor.finish(), quantized: matmuls.length };
}
