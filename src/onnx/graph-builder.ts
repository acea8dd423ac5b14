import { create } from "@bufbuild/protobuf";
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  NodeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type GraphProto,
  type NodeProto,
  type TensorProto,
  type TensorProto_DataType,
  type ValueInfoProto,
} from "../../gen/onnx/onnx_pb.js";
import { floatTensor, int64Tensor } from "./tensor.js";

/** An attribute value: number (int if integral and `ints` hint absent), float list, int list, string, tensor. */
export type AttributeValue =
  | { int: number }
  | { float: number }
  | { ints: number[] }
  | { floats: number[] }
  | { string: string }
  | { tensor: TensorProto };

/** A dimension of a graph input/output: a fixed size or a symbolic name such as "batch". */
export type Dim = number | string;

/** Creates a tensor value-info (name, element type, shape with fixed or symbolic dims). */
export function valueInfo(name: string, elemType: TensorProto_DataType, shape: Dim[]): ValueInfoProto {
  return create(ValueInfoProtoSchema, {
    name,
    type: {
      value: {
        case: "tensorType",
        value: {
          elemType,
          shape: {
            dim: shape.map((dim) =>
              typeof dim === "number"
                ? { value: { case: "dimValue" as const, value: BigInt(dim) } }
                : { value: { case: "dimParam" as const, value: dim } },
            ),
          },
        },
      },
    },
  });
}

function attribute(name: string, value: AttributeValue): AttributeProto {
  if ("int" in value) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(value.int) });
  if ("float" in value) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: value.float });
  if ("ints" in value) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: value.ints.map(BigInt) });
  if ("floats" in value) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOATS, floats: value.floats });
  if ("string" in value) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.STRING, s: new TextEncoder().encode(value.string) });
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.TENSOR, t: value.tensor });
}

/** A node to add: op type, inputs, outputs (count or names), attributes, domain. */
export interface NodeSpec {
  inputs: string[];
  /** Output names; defaults to one generated name. */
  outputs?: string[];
  attributes?: Record<string, AttributeValue>;
  domain?: string;
  name?: string;
}

/**
 * Builds an ONNX graph step by step. Node and value names are generated unique
 * (`<prefix>_<n>`) unless given. `op` returns the node's first output name so
 * calls compose: `g.op("Add", { inputs: [g.op("MatMul", ...), bias] })`.
 */
export interface GraphBuilder {
  /** Adds a node and returns its first output name. */
  op(opType: string, spec: NodeSpec): string;
  /** Adds a node with several outputs and returns all output names. */
  opMulti(opType: string, spec: NodeSpec & { outputs: string[] }): string[];
  /** Adds an initializer and returns its name. */
  initializer(tensor: TensorProto): string;
  /** Adds a float32 constant initializer with a generated name. */
  constFloat(dims: number[], values: ArrayLike<number>, prefix?: string): string;
  /** Adds an int64 constant initializer with a generated name (shapes, axes, indices). */
  constInt64(dims: number[], values: ArrayLike<number>, prefix?: string): string;
  input(info: ValueInfoProto): string;
  output(info: ValueInfoProto): string;
  /** A fresh unique name with the given prefix. */
  name(prefix: string): string;
  toGraph(): GraphProto;
}

/** Creates an empty graph builder. */
export function createGraphBuilder(graphName: string): GraphBuilder {
  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  const inputs: ValueInfoProto[] = [];
  const outputs: ValueInfoProto[] = [];
  const counters = new Map<string, number>();
  const name = (prefix: string) => {
    const next = (counters.get(prefix) ?? 0) + 1;
    counters.set(prefix, next);
    return `${prefix}_${next}`;
  };
  const addNode = (opType: string, spec: NodeSpec) => {
    const nodeOutputs = spec.outputs ?? [name(opType.toLowerCase())];
    nodes.push(create(NodeProtoSchema, {
      opType,
      name: spec.name ?? name(`node_${opType}`),
      domain: spec.domain ?? "",
      input: spec.inputs,
      output: nodeOutputs,
      attribute: Object.entries(spec.attributes ?? {}).map(([key, value]) => attribute(key, value)),
    }));
    return nodeOutputs;
  };
  return {
    op: (opType, spec) => addNode(opType, spec)[0],
    opMulti: (opType, spec) => addNode(opType, spec),
    initializer(tensor) {
      initializers.push(tensor);
      return tensor.name;
    },
    constFloat(dims, values, prefix = "const") {
      const tensor = floatTensor(name(prefix), dims, values);
      initializers.push(tensor);
      return tensor.name;
    },
    constInt64(dims, values, prefix = "const") {
      const tensor = int64Tensor(name(prefix), dims, values);
      initializers.push(tensor);
      return tensor.name;
    },
    input(info) {
      inputs.push(info);
      return info.name;
    },
    output(info) {
      outputs.push(info);
      return info.name;
    },
    name,
    toGraph: () => create(GraphProtoSchema, { name: graphName, node: nodes, initializer: initializers, input: inputs, output: outputs }),
  };
}
