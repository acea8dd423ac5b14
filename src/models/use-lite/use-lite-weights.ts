import type { TfjsGraphModel, TfjsWeight } from "./tfjs-graph-model.js";

/** Node-name prefix of the USE-Lite transformer (window clipping, encoding, layer stack). */
export const KONA = "module_apply_default/Encoder_en/KonaTransformer/";
/** Node-name prefix of the token encoding (embedding lookup, sparse-to-dense input). */
export const ENCODE = `${KONA}Encode/`;
/** Node-name prefix of the transformer layers (`Layer_<n>/...`). */
export const STACK = `${ENCODE}TransformerStack/`;
/** Node-name prefix of the pooled head (tanh layer, L2 normalisation). */
export const HIDDEN = "module_apply_default/Encoder_en/hidden_layers/";

/** A layer norm's scale and bias vectors and its epsilon, as the graph computes it. */
export interface LayerNormWeights {
  scale: TfjsWeight;
  bias: TfjsWeight;
  epsilon: number;
}

/** A dense layer: kernel (`[K, N]`, possibly with leading 1s, see {@link matrixShape}) and bias. */
export interface DenseWeights {
  kernel: TfjsWeight;
  bias: TfjsWeight;
}

/** One transformer layer's weights and hyperparameters, read from the graph by {@link readLayer}. */
export interface TransformerLayerWeights {
  width: number;
  heads: number;
  headSize: number;
  queryScale: TfjsWeight;
  attentionNorm: LayerNormWeights;
  qkv: DenseWeights;
  output: DenseWeights;
  /** Layer 0 widens its residual path with a dense layer (256 -> 512); later layers add the input as is. */
  residual?: DenseWeights;
  ffnNorm: LayerNormWeights;
  ffnIn: DenseWeights;
  ffnOut: DenseWeights;
}

/** The value of a one-element weight; throws when it has more, so a changed graph fails loudly. */
export function scalar(weight: TfjsWeight): number {
  if (weight.data.length !== 1) throw new Error(`USE-Lite graph: ${weight.name} is not a scalar`);
  return Number(weight.data[0]);
}

/** Throws unless node `nodeName` is an `op` node: the converter relies on that op's semantics. */
export function expectOp(source: TfjsGraphModel, nodeName: string, op: string): void {
  const found = source.node(nodeName).op;
  if (found !== op) throw new Error(`USE-Lite graph: ${nodeName} is ${found}, expected ${op}`);
}

function layerNorm(source: TfjsGraphModel, prefix: string): LayerNormWeights {
  return {
    scale: source.constantInput(`${prefix}layer_norm/mul`, 0),
    bias: source.constantInput(`${prefix}layer_norm/add_1`, 1),
    epsilon: scalar(source.constantInput(`${prefix}layer_norm/add`, 1)),
  };
}

/** The dense layer whose kernel feeds `matMulNode` and whose bias feeds `biasAddNode`. */
export function dense(source: TfjsGraphModel, matMulNode: string, biasAddNode: string): DenseWeights {
  return { kernel: source.constantInput(matMulNode, 1), bias: source.constantInput(biasAddNode, 1) };
}

/**
 * Reads transformer layer `index`'s weights and hyperparameters by following the graph's nodes;
 * throws when its ops, q/k/v split or head shape are not what the converter emits.
 */
export function readLayer(source: TfjsGraphModel, index: number): TransformerLayerWeights {
  const layer = `${STACK}Layer_${index}/TransformerLayer/`;
  const attention = `${layer}MultiheadAttention/`;
  const headShape = `${attention}split_heads/split_last_dimension/Reshape/shape`;
  expectOp(source, `${attention}DotProductAttention/BaseDotProductAttention/Softmax`, "Softmax");
  expectOp(source, `${layer}FFN/conv1/Relu`, "Relu");
  const splitSizes = Array.from(source.constantInput(`${attention}split`, 1).data);
  const width = splitSizes[0];
  if (splitSizes.length !== 3 || splitSizes.some((size) => size !== width)) {
    throw new Error(`USE-Lite graph: layer ${index} splits q/k/v as [${splitSizes.join(",")}]`);
  }
  const heads = scalar(source.constantInput(headShape, 2));
  const headSize = scalar(source.constantInput(headShape, 3));
  if (heads * headSize !== width) throw new Error(`USE-Lite graph: layer ${index} has ${heads} heads of ${headSize} for width ${width}`);
  const hasResidualDense = source.hasNode(`${layer}AdjustResidualInput/dense/MatMul`);
  return {
    width,
    heads,
    headSize,
    queryScale: source.constantInput(`${attention}mul`, 1),
    attentionNorm: layerNorm(source, `${layer}layer_prepostprocess/`),
    qkv: dense(source, `${attention}qkv_transform_single/Conv2D`, `${attention}qkv_transform_single/BiasAdd`),
    output: dense(source, `${attention}output_transform_single/Conv2D`, `${attention}output_transform_single/BiasAdd`),
    residual: hasResidualDense
      ? dense(source, `${layer}AdjustResidualInput/dense/MatMul`, `${layer}AdjustResidualInput/dense/BiasAdd`)
      : undefined,
    ffnNorm: layerNorm(source, `${layer}FFN/layer_prepostprocess/`),
    ffnIn: dense(source, `${layer}FFN/conv1/Tensordot/MatMul`, `${layer}FFN/conv1/BiasAdd`),
    ffnOut: dense(source, `${layer}FFN/conv2/Tensordot/MatMul`, `${layer}FFN/conv2/BiasAdd`),
  };
}

/** Shape of a weight with leading 1s dropped: a 1x1 Conv2D kernel `[1,1,K,N]` is the matrix `[K,N]`. */
export function matrixShape(weight: TfjsWeight): [number, number] {
  const dims = weight.shape.filter((dim, index) => dim !== 1 || index >= weight.shape.length - 2);
  if (dims.length !== 2) throw new Error(`USE-Lite graph: ${weight.name} [${weight.shape.join(",")}] is not a matrix`);
  return [dims[0], dims[1]];
}
