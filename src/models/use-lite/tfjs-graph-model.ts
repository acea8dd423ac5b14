import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";

/** One node of a TF.js graph model (`modelTopology.node[]`), as the TF.js converter writes it. */
export interface TfjsNode {
  name: string;
  op: string;
  /** Input tensor names; `name:k` selects output k, `^name` is a control dependency. */
  input: string[];
  attr: Record<string, unknown>;
}

/** Element types a decoded weight can have. */
export type TfjsDtype = "float32" | "int32" | "bool";

/** A weight decoded from the shards: dequantized to its original dtype, row-major. */
export interface TfjsWeight {
  name: string;
  dtype: TfjsDtype;
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
}

/**
 * A TF.js graph model read from disk: every node by name and every weight by name.
 * Lookups throw with the missing name, so a package whose graph differs from the
 * one a converter expects fails loudly instead of producing a wrong model.
 */
export interface TfjsGraphModel {
  nodes: ReadonlyMap<string, TfjsNode>;
  weights: ReadonlyMap<string, TfjsWeight>;
  /** The node called `name`; throws when absent. */
  node(name: string): TfjsNode;
  /** True when the graph has a node called `name`. */
  hasNode(name: string): boolean;
  /** The weight called `name`; throws when absent. */
  weight(name: string): TfjsWeight;
  /**
   * The constant feeding input `index` of node `nodeName` (following the graph's
   * edges, so weights are found by the role they play, not by byte offset).
   */
  constantInput(nodeName: string, index: number): TfjsWeight;
}

interface ManifestEntry {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; scale?: number; min?: number; original_dtype?: string };
}

interface ManifestGroup {
  paths: string[];
  weights: ManifestEntry[];
}

interface ModelJson {
  modelTopology: { node: Array<{ name: string; op: string; input?: string[]; attr?: Record<string, unknown> }> };
  weightsManifest: ManifestGroup[];
}

const storedByteSize: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

function float16ToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function checkDtype(entry: ManifestEntry, dtype: string): TfjsDtype {
  if (dtype === "float32" || dtype === "int32" || dtype === "bool") return dtype;
  throw new Error(`TF.js weight ${entry.name}: unsupported dtype ${dtype}`);
}

/** Decodes one manifest entry from its bytes, undoing TF.js weight quantization (uint8/uint16 affine, float16). */
function decodeWeight(entry: ManifestEntry, bytes: Uint8Array): TfjsWeight {
  const count = elementCount(entry.shape);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const quantization = entry.quantization;
  if (!quantization) {
    const dtype = checkDtype(entry, entry.dtype);
    if (dtype === "bool") return { name: entry.name, dtype, shape: entry.shape, data: bytes.slice() };
    const data = dtype === "float32" ? new Float32Array(count) : new Int32Array(count);
    for (let i = 0; i < count; i++) data[i] = dtype === "float32" ? view.getFloat32(i * 4, true) : view.getInt32(i * 4, true);
    return { name: entry.name, dtype, shape: entry.shape, data };
  }
  const dtype = checkDtype(entry, quantization.original_dtype ?? entry.dtype);
  const values = new Float64Array(count);
  if (quantization.dtype === "float16") {
    for (let i = 0; i < count; i++) values[i] = float16ToFloat32(view.getUint16(i * 2, true));
  } else if (quantization.dtype === "uint8" || quantization.dtype === "uint16") {
    const scale = quantization.scale ?? 1;
    const min = quantization.min ?? 0;
    for (let i = 0; i < count; i++) {
      const stored = quantization.dtype === "uint8" ? view.getUint8(i) : view.getUint16(i * 2, true);
      values[i] = stored * scale + min;
    }
  } else {
    throw new Error(`TF.js weight ${entry.name}: unsupported quantization ${quantization.dtype}`);
  }
  if (dtype === "float32") return { name: entry.name, dtype, shape: entry.shape, data: Float32Array.from(values) };
  if (dtype === "int32") return { name: entry.name, dtype, shape: entry.shape, data: Int32Array.from(values, Math.round) };
  return { name: entry.name, dtype, shape: entry.shape, data: Uint8Array.from(values, (value) => (value ? 1 : 0)) };
}

/** Strips the output suffix (`:k`) and control marker (`^`) from a TF.js input reference. */
function tensorName(input: string): string {
  const name = input.startsWith("^") ? input.slice(1) : input;
  const colon = name.lastIndexOf(":");
  return colon > 0 && /^\d+$/.test(name.slice(colon + 1)) ? name.slice(0, colon) : name;
}

/**
 * Reads a TF.js graph model (`model.json` and the weight shards it lists, resolved
 * next to it). Each manifest group's shards are concatenated and its weights decoded
 * in manifest order with their declared dtype, shape and quantization. Throws on a
 * short shard, an unknown dtype or quantization, or trailing bytes in a group.
 */
export async function readTfjsGraphModel(modelJsonPath: string): Promise<TfjsGraphModel> {
  const modelJson = JSON.parse(await readFile(modelJsonPath, "utf8")) as ModelJson;
  const folder = dirname(modelJsonPath);
  const weights = new Map<string, TfjsWeight>();
  for (const group of modelJson.weightsManifest) {
    const shards = await Promise.all(group.paths.map((path) => readFile(join(folder, path))));
    const groupBytes = Buffer.concat(shards);
    let offset = 0;
    for (const entry of group.weights) {
      const storedDtype = entry.quantization?.dtype ?? entry.dtype;
      const size = storedByteSize[storedDtype];
      if (size === undefined) throw new Error(`TF.js weight ${entry.name}: unsupported stored dtype ${storedDtype}`);
      const byteLength = elementCount(entry.shape) * size;
      if (offset + byteLength > groupBytes.length) throw new Error(`TF.js weight ${entry.name}: shards end before its data`);
      weights.set(entry.name, decodeWeight(entry, groupBytes.subarray(offset, offset + byteLength)));
      offset += byteLength;
    }
    if (offset !== groupBytes.length) throw new Error(`TF.js weights: ${groupBytes.length - offset} unexplained bytes in ${group.paths.join(", ")}`);
  }
  const nodes = new Map<string, TfjsNode>();
  for (const node of modelJson.modelTopology.node) {
    nodes.set(node.name, { name: node.name, op: node.op, input: node.input ?? [], attr: node.attr ?? {} });
  }
  const node = (name: string): TfjsNode => {
    const found = nodes.get(name);
    if (!found) throw new Error(`TF.js graph: no node ${name}`);
    return found;
  };
  const weight = (name: string): TfjsWeight => {
    const found = weights.get(name);
    if (!found) throw new Error(`TF.js graph: no weight ${name}`);
    return found;
  };
  return {
    nodes,
    weights,
    node,
    hasNode: (name) => nodes.has(name),
    weight,
    constantInput(nodeName, index) {
      const input = node(nodeName).input[index];
      if (input === undefined) throw new Error(`TF.js graph: node ${nodeName} has no input ${index}`);
      return weight(tensorName(input));
    },
  };
}
