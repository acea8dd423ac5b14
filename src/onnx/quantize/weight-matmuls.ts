import type { NodeProto } from "../../../gen/onnx/onnx_pb.js";
import type { GraphEditor } from "../graph-edit.js";
import { DataType, readTensor } from "../tensor.js";

/** A top-level `MatMul(activations, W)` whose W is a constant float32 [K, N] initializer. */
export interface WeightMatMul {
  node: NodeProto;
  activations: string;
  weightName: string;
  /** Row-major [K, N]. */
  weights: Float32Array;
  k: number;
  n: number;
}

/** Which MatMuls a weight quantizer leaves alone. */
export interface MatMulSelection {
  /** MatMuls whose weight has fewer elements stay float32. Default 0 (none). */
  minWeightElements?: number;
  /** Node names (or weight initializer names) to keep in float32, e.g. a sensitive output layer. */
  exclude?: readonly string[];
}

/**
 * Finds the MatMuls a weight quantizer can rewrite: default-domain `MatMul` nodes whose second
 * input is a constant rank-2 float32 initializer, minus those `selection` keeps in float32.
 */
export function findWeightMatMuls(editor: GraphEditor, selection: MatMulSelection = {}): WeightMatMul[] {
  const minElements = selection.minWeightElements ?? 0;
  const excluded = new Set(selection.exclude ?? []);
  const found: WeightMatMul[] = [];
  for (const node of editor.nodes) {
    if (node.opType !== "MatMul" || (node.domain !== "" && node.domain !== "ai.onnx") || node.input.length !== 2) continue;
    if (excluded.has(node.name) || excluded.has(node.input[1])) continue;
    const tensor = editor.constantInitializer(node.input[1]);
    if (!tensor || tensor.dataType !== DataType.FLOAT || tensor.dims.length !== 2) continue;
    const [k, n] = tensor.dims.map(Number);
    if (k * n < minElements || k * n === 0) continue;
    found.push({ node, activations: node.input[0], weightName: tensor.name, weights: readTensor(tensor).data as Float32Array, k, n });
  }
  return found;
}

/** Drops a rewritten MatMul's weight initializer once nothing reads it any more. */
export function removeWeightIfUnused(editor: GraphEditor, weightName: string): void {
  if (editor.consumerCount(weightName) === 0) editor.removeInitializer(weightName);
}

/** Rounds half to even, as ONNX Round and QuantizeLinear do. */
export function roundHalfToEven(value: number): number {
  const rounded = Math.round(value);
  return Math.abs(value % 1) === 0.5 && rounded % 2 !== 0 ? rounded - 1 : rounded;
}
