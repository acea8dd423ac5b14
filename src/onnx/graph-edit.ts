import { clone, create } from "@bufbuild/protobuf";
import {
  ModelProtoSchema,
  OperatorSetIdProtoSchema,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from "../../gen/onnx/onnx_pb.js";
import { createGraphBuilder, type AttributeValue } from "./graph-builder.js";

/** Options of a node added by a {@link GraphEditor}. */
export interface EditNodeOptions {
  attributes?: Record<string, AttributeValue>;
  domain?: string;
  /** Output names; default one fresh name. Give the replaced node's output name to take its place. */
  outputs?: string[];
}

/**
 * Rewrites a copy of an existing model: add nodes and initializers, remove nodes, then `finish()`
 * puts every node after its producers (ONNX requires topological order) and returns the model.
 * Names it generates are unique in the whole model, subgraphs included. The model passed in is
 * never modified.
 */
export interface GraphEditor {
  /** Top-level nodes of the copy, in their original order (removed ones included until `finish`). */
  readonly nodes: readonly NodeProto[];
  /** Version of an operator domain the model imports (`""` = default ONNX domain), 0 if absent. */
  opsetVersion(domain?: string): number;
  /** Makes the model import `domain` at `version` or later (e.g. `com.microsoft` 1 for contrib ops). */
  requireOpset(domain: string, version: number): void;
  /** The top-level initializer with this name, unless a graph input of the same name can override it. */
  constantInitializer(name: string): TensorProto | undefined;
  /** Snapshot of the top-level initializers no graph input can override. */
  constantInitializers(): TensorProto[];
  /** How many nodes (top level and subgraphs, removed ones excluded) read this value. */
  consumerCount(name: string): number;
  /** A name used nowhere in the model, starting with `prefix`. */
  uniqueName(prefix: string): string;
  /** Adds a node and returns its first output name. */
  add(opType: string, inputs: string[], options?: EditNodeOptions): string;
  /** Adds an initializer under a fresh name derived from `prefix`; returns that name. */
  addInitializer(prefix: string, tensor: TensorProto): string;
  /** Removes a top-level node (its outputs must be produced again by added nodes or be unused). */
  removeNode(node: NodeProto): void;
  /** Removes a top-level initializer by name. */
  removeInitializer(name: string): void;
  /** Sorts nodes topologically (keeping the original order where it is free) and returns the model. */
  finish(): ModelProto;
}

/** Names a graph reads from its enclosing scope (used by nested If/Loop/Scan bodies). */
function outerReferences(graph: GraphProto): Set<string> {
  const defined = new Set<string>([
    ...graph.input.map((value) => value.name),
    ...graph.initializer.map((tensor) => tensor.name),
    ...graph.node.flatMap((node) => node.output),
  ]);
  const outer = new Set<string>();
  for (const node of graph.node) {
    for (const name of nodeReads(node)) if (name !== "" && !defined.has(name)) outer.add(name);
  }
  for (const value of graph.output) if (!defined.has(value.name)) outer.add(value.name);
  return outer;
}

/** Everything a node reads: its inputs plus what its subgraphs take from the outer scope. */
function nodeReads(node: NodeProto): string[] {
  const reads = [...node.input];
  for (const attribute of node.attribute) {
    const graphs = attribute.g ? [attribute.g, ...attribute.graphs] : attribute.graphs;
    for (const subgraph of graphs) reads.push(...outerReferences(subgraph));
  }
  return reads;
}

function collectNames(graph: GraphProto, names: Set<string>): void {
  for (const value of [...graph.input, ...graph.output, ...graph.valueInfo]) names.add(value.name);
  for (const tensor of graph.initializer) names.add(tensor.name);
  for (const node of graph.node) {
    names.add(node.name);
    for (const name of [...node.input, ...node.output]) names.add(name);
    for (const attribute of node.attribute) {
      if (attribute.g) collectNames(attribute.g, names);
      for (const subgraph of attribute.graphs) collectNames(subgraph, names);
    }
  }
}

/** Orders nodes so each comes after the producers of what it reads; stable for already sorted parts. */
function topologicalOrder(nodes: NodeProto[]): NodeProto[] {
  const producer = new Map<string, NodeProto>();
  for (const node of nodes) for (const output of node.output) if (output !== "") producer.set(output, node);
  const state = new Map<NodeProto, "visiting" | "done">();
  const ordered: NodeProto[] = [];
  for (const root of nodes) {
    if (state.has(root)) continue;
    const stack: { node: NodeProto; pending: NodeProto[] }[] = [];
    const enter = (node: NodeProto) => {
      state.set(node, "visiting");
      const pending = nodeReads(node)
        .map((name) => producer.get(name))
        .filter((dependency): dependency is NodeProto => dependency !== undefined && dependency !== node)
        .reverse();
      stack.push({ node, pending });
    };
    enter(root);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const next = top.pending.pop();
      if (next === undefined) {
        stack.pop();
        state.set(top.node, "done");
        ordered.push(top.node);
      } else if (state.get(next) === "visiting") {
        throw new Error(`graph has a cycle through node ${next.name || next.opType}`);
      } else if (!state.has(next)) {
        enter(next);
      }
    }
  }
  return ordered;
}

/** Starts editing a deep copy of `model`. */
export function createGraphEditor(model: ModelProto): GraphEditor {
  const copy = clone(ModelProtoSchema, model);
  const graph = copy.graph;
  if (!graph) throw new Error("createGraphEditor: model has no graph");
  const used = new Set<string>();
  collectNames(graph, used);
  const graphInputs = new Set(graph.input.map((value) => value.name));
  const initializers = new Map(graph.initializer.map((tensor) => [tensor.name, tensor]));
  const removedNodes = new Set<NodeProto>();
  const added: NodeProto[] = [];
  const counters = new Map<string, number>();

  const uniqueName = (prefix: string) => {
    let next = counters.get(prefix) ?? 0;
    let candidate: string;
    do candidate = `${prefix}_${++next}`;
    while (used.has(candidate));
    counters.set(prefix, next);
    used.add(candidate);
    return candidate;
  };
  const isDefaultDomain = (domain: string) => domain === "" || domain === "ai.onnx";

  return {
    nodes: graph.node,
    opsetVersion(domain = "") {
      const entry = copy.opsetImport.find((opset) =>
        isDefaultDomain(domain) ? isDefaultDomain(opset.domain) : opset.domain === domain);
      return entry ? Number(entry.version) : 0;
    },
    requireOpset(domain, version) {
      const entry = copy.opsetImport.find((opset) => opset.domain === domain);
      if (!entry) copy.opsetImport.push(create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) }));
      else if (entry.version < BigInt(version)) entry.version = BigInt(version);
    },
    constantInitializer: (name) => (graphInputs.has(name) ? undefined : initializers.get(name)),
    constantInitializers: () => graph.initializer.filter((tensor) => !graphInputs.has(tensor.name)),
    consumerCount(name) {
      let count = 0;
      const visit = (nodes: NodeProto[]) => {
        for (const node of nodes) {
          if (removedNodes.has(node)) continue;
          count += nodeReads(node).filter((read) => read === name).length;
        }
      };
      visit(graph.node);
      visit(added);
      count += graph.output.filter((value) => value.name === name).length;
      return count;
    },
    uniqueName,
    add(opType, inputs, options = {}) {
      const outputs = options.outputs ?? [uniqueName(opType.toLowerCase())];
      for (const output of outputs) used.add(output);
      // A one-node builder is the node factory: it owns the attribute encoding.
      const factory = createGraphBuilder("node");
      factory.op(opType, {
        inputs,
        outputs,
        attributes: options.attributes,
        domain: options.domain,
        name: uniqueName(`node_${opType}`),
      });
      added.push(factory.toGraph().node[0]);
      return outputs[0];
    },
    addInitializer(prefix, tensor) {
      const name = uniqueName(prefix);
      const named = { ...tensor, name };
      graph.initializer.push(named);
      initializers.set(name, named);
      return name;
    },
    removeNode(node) {
      removedNodes.add(node);
    },
    removeInitializer(name) {
      graph.initializer = graph.initializer.filter((tensor) => tensor.name !== name);
      initializers.delete(name);
    },
    finish() {
      graph.node = topologicalOrder([...graph.node.filter((node) => !removedNodes.has(node)), ...added]);
      return copy;
    },
  };
}
