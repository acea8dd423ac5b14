import { readFile, writeFile } from "node:fs/promises";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ModelProtoSchema,
  OperatorSetIdProtoSchema,
  type ModelProto,
} from "../../gen/onnx/onnx_pb.js";
import type { GraphBuilder } from "./graph-builder.js";

/** ONNX IR version written by our tooling (IR 8 = ONNX 1.12+, readable by onnxruntime >= 1.11). */
export const IR_VERSION = 8n;

/** Parses a serialized ONNX model. Throws the protobuf decode error unchanged. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  return fromBinary(ModelProtoSchema, bytes);
}

/** Serializes an ONNX model to the protobuf wire format onnxruntime loads. */
export function encodeModel(model: ModelProto): Uint8Array {
  return toBinary(ModelProtoSchema, model);
}

/** Reads and parses an ONNX model file. */
export async function readModel(path: string): Promise<ModelProto> {
  return decodeModel(await readFile(path));
}

/** Writes an ONNX model file (all weights inline; models over 2 GiB are out of scope). */
export async function writeModel(path: string, model: ModelProto): Promise<void> {
  await writeFile(path, encodeModel(model));
}

/** Options of a model wrapper around a finished graph. */
export interface ModelOptions {
  /** Default-domain opset version (17 unless the graph needs another). */
  opset?: number;
  /** Extra operator domains, e.g. `{ "com.microsoft": 1 }` for MatMulNBits. */
  extraDomains?: Record<string, number>;
  producerName?: string;
  docString?: string;
  /** Key/value metadata stored in the model (e.g. source, pooling). */
  metadata?: Record<string, string>;
}

/** Wraps a built graph into a ModelProto with IR version and opset imports. */
export function buildModel(graph: GraphBuilder, options: ModelOptions = {}): ModelProto {
  const opsetImport = [create(OperatorSetIdProtoSchema, { domain: "", version: BigInt(options.opset ?? 17) })];
  for (const [domain, version] of Object.entries(options.extraDomains ?? {})) {
    opsetImport.push(create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) }));
  }
  return create(ModelProtoSchema, {
    irVersion: IR_VERSION,
    producerName: options.producerName ?? "sutra-embedder",
    producerVersion: "1",
    docString: options.docString ?? "",
    opsetImport,
    graph: graph.toGraph(),
    metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
  });
}
