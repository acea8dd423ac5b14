import type { ModelProto } from "../../../gen/onnx/onnx_pb.js";
import { createGraphEditor, type GraphEditor } from "../graph-edit.js";
import { DataType, floatTensor, int64Tensor, makeTensor } from "../tensor.js";
import { findWeightMatMuls, removeWeightIfUnused, roundHalfToEven, type MatMulSelection } from "./weight-matmuls.js";

/** Options of {@link quantizeMatMulsInt8}. */
export type Int8DynamicOptions = MatMulSelection;

/** What {@link quantizeMatMulsInt8} did. */
export interface Int8DynamicResult {
  model: ModelProto;
  /** MatMuls rewritten. */
  quantized: number;
}

/** Smallest normal float32: the floor of a row scale, so an all-zero row quantizes to zeros, not NaN. */
const MIN_ROW_SCALE = 2 ** -126;

/**
 * Symmetric per-output-channel int8 weights: column n of W [K, N] gets scale max|W[:, n]| / 127
 * (1 for an all-zero column) and values round-half-even(W / scale) in [-127, 127].
 */
export function quantizeWeightsPerColumn(weights: Float32Array, k: number, n: number): { values: Int8Array; scales: Float32Array } {
  const scales = new Float32Array(n);
  for (let row = 0; row < k; row++) {
    for (let column = 0; column < n; column++) scales[column] = Math.max(scales[column], Math.abs(weights[row * n + column]));
  }
  for (let column = 0; column < n; column++) scales[column] = scales[column] === 0 ? 1 : scales[column] / 127;
  const values = new Int8Array(k * n);
  for (let index = 0; index < values.length; index++) {
    values[index] = Math.max(-127, Math.min(127, roundHalfToEven(weights[index] / scales[index % n])));
  }
  return { values, scales };
}

interface SharedConstants {
  zeroPoint: string;
  divisor: string;
  floor: string;
  /** The reduction axis as an input (opset >= 18 takes it so); undefined below 18. */
  rowAxis?: string;
  one: string;
}

function reduce(editor: GraphEditor, opType: "ReduceMax" | "ReduceMin", input: string, constants: SharedConstants) {
  return constants.rowAxis
    ? editor.add(opType, [input, constants.rowAxis], { attributes: { keepdims: { int: 0 } } })
    : editor.add(opType, [input], { attributes: { axes: { ints: [1] }, keepdims: { int: 0 } } });
}

/**
 * Emits the per-row dynamic quantization of `activations` (any rank, K values per row along the
 * last axis): scale = max(max|row| / 127, 2^-126), q = QuantizeLinear(row, scale, 128) as uint8
 * (round half to even, saturating), computed on a [rows, K] view with one scale per row. A row's
 * scale depends on that row alone, which keeps a text's result independent of its batch.
 * Returns q in the activations' shape and the row scales shaped [..., 1].
 */
function quantizeRows(editor: GraphEditor, activations: string, k: number, constants: SharedConstants) {
  const shape = editor.add("Shape", [activations]);
  const rows = editor.add("Reshape", [activations, editor.addInitializer("quant_rows_shape", int64Tensor("", [2], [-1, k]))]);
  const rowMax = editor.add("Max", [
    reduce(editor, "ReduceMax", rows, constants),
    editor.add("Neg", [reduce(editor, "ReduceMin", rows, constants)]),
  ]);
  const scales = editor.add("Max", [editor.add("Div", [rowMax, constants.divisor]), constants.floor]);
  const zeroPoints = editor.add("Expand", [constants.zeroPoint, editor.add("Shape", [scales])]);
  const quantizedRows = editor.add("QuantizeLinear", [rows, scales, zeroPoints], { attributes: { axis: { int: 0 } } });
  const leading = editor.add("Shape", [activations], { attributes: { end: { int: -1 } } });
  return {
    quantized: editor.add("Reshape", [quantizedRows, shape]),
    rowScales: editor.add("Reshape", [scales, editor.add("Concat", [leading, constants.one], { attributes: { axis: { int: 0 } } })]),
  };
}

/**
 * Returns a copy of `model` where every `MatMul(x, W)` with a constant float32 W [K, N] runs in int8:
 * per-output-channel symmetric int8 weights, uint8 activations (zero point 128) quantized per row
 * at run time, and com.microsoft `MatMulIntegerToFloat(xq, Wq, rowScales, columnScales, 128)` in
 * place of the MatMul: MLAS's u8s8 GEMM (VNNI where the CPU has it) with the column scales applied
 * in the GEMM and the row scales right after. The node is emitted directly rather than left for
 * onnxruntime to fuse from `Mul(Cast(MatMulInteger), Mul(rowScales, columnScales))`, because that
 * fusion also absorbs a following bias Add, and onnxruntime 1.30 then multiplies the bias by the
 * row scales too (wrong whenever the activation scale is not a scalar). A bias Add stays a separate
 * node. MatMuls that read the same activations share one quantization.
 */
export function quantizeMatMulsInt8(model: ModelProto, options: Int8DynamicOptions = {}): Int8DynamicResult {
  const editor = createGraphEditor(model);
  const matmuls = findWeightMatMuls(editor, options);
  if (matmuls.length === 0) return { model: editor.finish(), quantized: 0 };
  if (editor.opsetVersion() < 13) throw new Error(`int8: opset ${editor.opsetVersion()} has no per-axis QuantizeLinear (needs >= 13)`);
  editor.requireOpset("com.microsoft", 1);
  const constants: SharedConstants = {
    zeroPoint: editor.addInitializer("quant_zero_point", makeTensor("", { dataType: DataType.UINT8, dims: [], data: Uint8Array.of(128) })),
    divisor: editor.addInitializer("quant_divisor", floatTensor("", [], [127])),
    floor: editor.addInitializer("quant_floor", floatTensor("", [], [MIN_ROW_SCALE])),
    rowAxis: editor.opsetVersion() >= 18 ? editor.addInitializer("quant_row_axis", int64Tensor("", [1], [1])) : undefined,
    one: editor.addInitializer("quant_one", int64Tensor("", [1], [1])),
  };
  const quantizedActivations = new Map<string, ReturnType<typeof quantizeRows>>();
  for (const matmul of matmuls) {
    let rows = quantizedActivations.get(matmul.activations);
    if (!rows) {
      rows = quantizeRows(editor, matmul.activations, matmul.k, constants);
      quantizedActivations.set(matmul.activations, rows);
    }
    const { values, scales } = quantizeWeightsPerColumn(matmul.weights, matmul.k, matmul.n);
    const weights = editor.addInitializer(`${matmul.weightName}_int8`, makeTensor("", { dataType: DataType.INT8, dims: [matmul.k, matmul.n], data: values }));
    const columnScales = editor.addInitializer(`${matmul.weightName}_scale`, floatTensor("", [matmul.n], scales));
    editor.add("MatMulIntegerToFloat", [rows.quantized, weights, rows.rowScales, columnScales, constants.zeroPoint], {
      domain: "com.microsoft",
      outputs: [matmul.node.output[0]],
    });
    editor.removeNode(matmul.node);
    removeWeightIfUnused(editor, matmul.weightName);
  }
  return { model: editor.finish(), quantized: matmuls.length };
}
