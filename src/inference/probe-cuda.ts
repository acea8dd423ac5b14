import * as ort from "onnxruntime-node";
import { createGraphBuilder, valueInfo } from "../onnx/graph-builder.js";
import { buildModel, encodeModel } from "../onnx/model-io.js";
import { DataType } from "../onnx/tensor.js";

/**
 * Tells whether the CUDA execution provider can open a session on this host,
 * by creating a one-node session with `executionProviders: ["cuda"]`.
 * onnxruntime throws when the CUDA provider library (installed from NuGet with
 * ONNXRUNTIME_NODE_INSTALL=cuda12) or the driver is missing; that is `false`,
 * with the error message as the reason.
 */
export async function probeCuda(): Promise<{ available: boolean; reason: string }> {
  const graph = createGraphBuilder("cuda_probe");
  const input = graph.input(valueInfo("x", DataType.FLOAT, [1]));
  graph.op("Identity", { inputs: [input], outputs: ["y"] });
  graph.output(valueInfo("y", DataType.FLOAT, [1]));
  // The expected failure would also print onnxruntime's native error line; the caller logs the
  // reason once instead. This thread runs no other sessions (workers hold them).
  ort.env.logLevel = "fatal";
  try {
    const session = await ort.InferenceSession.create(encodeModel(buildModel(graph)), { executionProviders: ["cuda"] });
    await session.release();
    return { available: true, reason: "" };
  } catch (error) {
    return { available: false, reason: (error as Error).message.split("\n")[0] };
  }
}
