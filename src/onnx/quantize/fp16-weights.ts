import type { ModelProto } from "../../../gen/onnx/onnx_pb.js";
import { createGraphEditor } from "../graph-edit.js";
import { DataType, elementCount, makeTensor, readTensor } from "../tensor.js";
import { toFloat16Array } from "./float16.js";

/** Options of {@link convertWeightsToFloat16}. */
export interface Float16WeightOptions {
  /** Float initializers with fewer elements stay float32 (a Cast costs more than it saves). Default 1024. */
  minElements?: number;
  /** Initializer names to keep in float32 (e.g. quantization scales a fused kernel needs as constants). */
  exclude?: readonly string[];
}

/** What {@link convertWeightsToFloat16} did. */
export interface Float16WeightResult {
  model: ModelProto;
  /** Initializers now stored as float16. */
  converted: number;
}

/**
 * Returns a copy of `model` whose large float32 initializers are stored as float16, each followed
 * by a Cast back to float32 that takes over the initializer's name, so every consumer still computes
 * in float32 (on CPU the file halves while speed and batch invariance stay those of fp32).
 * Rounding is round-to-nearest-even with subnormals; finite values beyond ±65504 saturate to ±65504.
 * Initializers that a graph input can override are left alone.
 */
export function convertWeightsToFloat16(model: ModelProto, options: Float16WeightOptions = {}): Float16WeightResult {
  const minElements = options.minElements ?? 1024;
  const excluded = new Set(options.exclude ?? []);
  const editor = createGraphEditor(model);
  let converted = 0;
  for (const tensor of editor.constantInitializers()) {
    if (tensor.dataType !== DataType.FLOAT || elementCount(tensor.dims.map(Number)) < minElements || excluded.has(tensor.name)) continue;
    if (editor.consumerCount(tensor.name) === 0) continue;
    const { dims, data } = readTensor(tensor);
    const stored = editor.addInitializer(`${tensor.name}_fp16`, makeTensor("", { dataType: DataType.FLOAT16, dims, data: toFloat16Array(data as Float32Array) }));
    editor.removeInitializer(tensor.name);
    editor.add("Cast", [stored], { attributes: { to: { int: DataType.FLOAT } }, outputs: [tensor.name] });
    converted++;
  }
  return { model: editor.finish(), converted };
}
