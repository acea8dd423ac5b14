import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-node";
import type { ModelProto } from "../../gen/onnx/onnx_pb.js";
import { createGraphBuilder, valueInfo, type GraphBuilder } from "../../src/onnx/graph-builder.js";
import { buildModel, writeModel } from "../../src/onnx/model-io.js";
import { DataType, floatTensor } from "../../src/onnx/tensor.js";

/**
 * Tiny Hugging Face–layout models for tests and benchmarks, built with our own graph tooling from
 * seeded random weights: the same options always give byte-identical files, and nothing is
 * downloaded. Their attention masks exclude padding exactly (masked scores get -1e9, whose softmax
 * weight is exactly 0), so a text's token vectors do not depend on how much padding surrounds it.
 */

/** Shape of a tiny transformer. Defaults: hidden 32, 2 layers, 2 heads, FFN 64, 128 positions. */
export interface TinyTransformerShape {
  hiddenSize?: number;
  layers?: number;
  heads?: number;
  intermediateSize?: number;
  maxPositions?: number;
  /** Seed of the weights; default 1. */
  seed?: number;
}

/** What a tiny model writer produced. */
export interface TinyModelInfo {
  /** The model folder. */
  dir: string;
  /** The ONNX file, relative to `dir`. */
  modelFile: string;
  inputs: string[];
  output: string;
  hiddenSize: number;
  vocabSize: number;
  padTokenId: number;
  paddingSide: "left" | "right";
  pooling: "mean" | "cls" | "last-token";
}

const BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789";
const PUNCTUATION = ".,!?'\"-:;()";
const WORDS = [
  "the", "a", "an", "is", "are", "was", "of", "to", "in", "and", "for", "on", "with", "how", "what",
  "where", "who", "why", "search", "query", "document", "text", "embed", "model", "server", "fast",
  "quick", "brown", "fox", "jump", "over", "lazy", "dog", "cat", "hello", "world", "sentence",
  "vector", "batch", "token", "rain", "sun", "data", "learn", "machine", "paris", "france",
  "capital", "city", "weather", "today", "good", "bad", "test", "this", "that", "it", "be",
];
const SUFFIXES = ["##s", "##ed", "##ing", "##er", "##ly", "##ize", "##ding", "##tion"];
/** Sentences the decoder's byte-level BPE merges are learned from. */
const BPE_CORPUS = [
  "The quick brown fox jumps over the lazy dog.",
  "What is the capital of France? Paris is the capital of France.",
  "How does the embedding server batch sentences and tokens?",
  "Search the documents for the query text, then learn from the data.",
  "Hello world! This is a test of the weather today: rain or sun.",
  "A machine learning model turns text into a vector.",
];

/** The WordPiece vocabulary of the tiny BERT, ids in order. */
export function tinyWordPieceVocab(): string[] {
  return [
    ...BERT_SPECIAL_TOKENS,
    ...LETTERS,
    ...PUNCTUATION,
    ...Array.from(LETTERS, (letter) => `##${letter}`),
    ...WORDS,
    ...SUFFIXES,
  ];
}

function createRandom(seed: number) {
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return {
    normals: (count: number, std: number, mean = 0) => Float32Array.from({ length: count }, () => mean + std * normal()),
  };
}

type Random = ReturnType<typeof createRandom>;

function resolveShape(shape: TinyTransformerShape) {
  const resolved = {
    hiddenSize: shape.hiddenSize ?? 32,
    layers: shape.layers ?? 2,
    heads: shape.heads ?? 2,
    intermediateSize: shape.intermediateSize ?? 64,
    maxPositions: shape.maxPositions ?? 128,
    seed: shape.seed ?? 1,
  };
  if (resolved.hiddenSize % resolved.heads !== 0) throw new Error("tiny model: hiddenSize must be a multiple of heads");
  return resolved;
}

function weight(g: GraphBuilder, random: Random, dims: number[], std: number, prefix: string, mean = 0) {
  return g.constFloat(dims, random.normals(dims.reduce((a, b) => a * b, 1), std, mean), prefix);
}

function linear(g: GraphBuilder, random: Random, input: string, inSize: number, outSize: number, prefix: string, bias: boolean) {
  const product = g.op("MatMul", { inputs: [input, weight(g, random, [inSize, outSize], 1 / Math.sqrt(inSize), `${prefix}_weight`)] });
  return bias ? g.op("Add", { inputs: [product, weight(g, random, [outSize], 0.02, `${prefix}_bias`)] }) : product;
}

function layerNorm(g: GraphBuilder, random: Random, input: string, size: number, prefix: string) {
  return g.op("LayerNormalization", {
    inputs: [input, weight(g, random, [size], 0.1, `${prefix}_gamma`, 1), weight(g, random, [size], 0.05, `${prefix}_beta`)],
    attributes: { axis: { int: -1 }, epsilon: { float: 1e-12 } },
  });
}

function rmsNorm(g: GraphBuilder, random: Random, input: string, size: number, prefix: string) {
  const meanSquare = g.op("ReduceMean", { inputs: [g.op("Mul", { inputs: [input, input] })], attributes: { axes: { ints: [-1] }, keepdims: { int: 1 } } });
  const rms = g.op("Sqrt", { inputs: [g.op("Add", { inputs: [meanSquare, g.constFloat([], [1e-6])] })] });
  return g.op("Mul", { inputs: [g.op("Div", { inputs: [input, rms] }), weight(g, random, [size], 0.1, `${prefix}_weight`, 1)] });
}

/** Multi-head self-attention with an additive mask bias broadcastable to [batch, heads, query, key]. */
function attention(g: GraphBuilder, random: Random, input: string, maskBias: string, shape: ReturnType<typeof resolveShape>, prefix: string, bias: boolean) {
  const { hiddenSize, heads } = shape;
  const headSize = hiddenSize / heads;
  const splitHeads = g.constInt64([4], [0, 0, heads, headSize]);
  const project = (name: string, perm: number[]) => g.op("Transpose", {
    inputs: [g.op("Reshape", { inputs: [linear(g, random, input, hiddenSize, hiddenSize, `${prefix}_${name}`, bias), splitHeads] })],
    attributes: { perm: { ints: perm } },
  });
  const query = project("query", [0, 2, 1, 3]);
  const key = project("key", [0, 2, 3, 1]);
  const value = project("value", [0, 2, 1, 3]);
  const scores = g.op("Add", {
    inputs: [g.op("Mul", { inputs: [g.op("MatMul", { inputs: [query, key] }), g.constFloat([], [1 / Math.sqrt(headSize)])] }), maskBias],
  });
  const probabilities = g.op("Softmax", { inputs: [scores], attributes: { axis: { int: -1 } } });
  const context = g.op("Reshape", {
    inputs: [
      g.op("Transpose", { inputs: [g.op("MatMul", { inputs: [probabilities, value] })], attributes: { perm: { ints: [0, 2, 1, 3] } } }),
      g.constInt64([3], [0, 0, hiddenSize]),
    ],
  });
  return linear(g, random, context, hiddenSize, hiddenSize, `${prefix}_output`, bias);
}

/** [batch, seq] int64 mask -> [batch, 1, 1, seq] float: 0 where attended, -1e9 where padding. */
function keyPaddingBias(g: GraphBuilder, mask: string) {
  const maskFloat = g.op("Unsqueeze", { inputs: [g.op("Cast", { inputs: [mask], attributes: { to: { int: DataType.FLOAT } } }), g.constInt64([2], [1, 2])] });
  return { maskFloat, bias: g.op("Mul", { inputs: [g.op("Sub", { inputs: [g.constFloat([], [1]), maskFloat] }), g.constFloat([], [-1e9])] }) };
}

function finishModel(g: GraphBuilder, hidden: string, hiddenSize: number, docString: string): ModelProto {
  g.op("Identity", { inputs: [hidden], outputs: ["last_hidden_state"] });
  g.output(valueInfo("last_hidden_state", DataType.FLOAT, ["batch", "sequence", hiddenSize]));
  return buildModel(g, { opset: 17, docString, producerName: "sutra-embedder tiny-models" });
}

/**
 * A BERT-shaped encoder (post-norm, GELU FFN, learned absolute positions 0..seq-1, two token
 * types). Inputs `input_ids`, `attention_mask`, `token_type_ids` [batch, sequence] int64; output
 * `last_hidden_state` [batch, sequence, hidden]. Expects right padding (positions count from 0).
 */
export function buildTinyBertModel(options: TinyTransformerShape & { vocabSize: number }): ModelProto {
  const shape = resolveShape(options);
  const { hiddenSize, intermediateSize } = shape;
  const random = createRandom(shape.seed);
  const g = createGraphBuilder("tiny_bert");
  const ids = g.input(valueInfo("input_ids", DataType.INT64, ["batch", "sequence"]));
  const mask = g.input(valueInfo("attention_mask", DataType.INT64, ["batch", "sequence"]));
  const types = g.input(valueInfo("token_type_ids", DataType.INT64, ["batch", "sequence"]));

  const sequenceLength = g.op("Gather", { inputs: [g.op("Shape", { inputs: [ids] }), g.constInt64([], [1])], attributes: { axis: { int: 0 } } });
  const positions = g.op("Range", { inputs: [g.constInt64([], [0]), sequenceLength, g.constInt64([], [1])] });
  const gather = (table: string, indices: string) => g.op("Gather", { inputs: [table, indices], attributes: { axis: { int: 0 } } });
  const embeddings = g.op("Add", {
    inputs: [
      g.op("Add", {
        inputs: [
          gather(weight(g, random, [options.vocabSize, hiddenSize], 1, "word_embeddings"), ids),
          gather(weight(g, random, [shape.maxPositions, hiddenSize], 0.5, "position_embeddings"), positions),
        ],
      }),
      gather(weight(g, random, [2, hiddenSize], 0.5, "token_type_embeddings"), types),
    ],
  });
  let hidden = layerNorm(g, random, embeddings, hiddenSize, "embeddings_norm");
  const { bias } = keyPaddingBias(g, mask);
  for (let layer = 0; layer < shape.layers; layer++) {
    const prefix = `layer${layer}`;
    const attended = attention(g, random, hidden, bias, shape, `${prefix}_attention`, true);
    hidden = layerNorm(g, random, g.op("Add", { inputs: [attended, hidden] }), hiddenSize, `${prefix}_attention_norm`);
    const up = linear(g, random, hidden, hiddenSize, intermediateSize, `${prefix}_intermediate`, true);
    const gelu = g.op("Mul", {
      inputs: [
        g.op("Mul", { inputs: [up, g.constFloat([], [0.5])] }),
        g.op("Add", { inputs: [g.constFloat([], [1]), g.op("Erf", { inputs: [g.op("Mul", { inputs: [up, g.constFloat([], [Math.SQRT1_2])] })] })] }),
      ],
    });
    const down = linear(g, random, gelu, intermediateSize, hiddenSize, `${prefix}_ffn_output`, true);
    hidden = layerNorm(g, random, g.op("Add", { inputs: [down, hidden] }), hiddenSize, `${prefix}_output_norm`);
  }
  return finishModel(g, hidden, hiddenSize, "Tiny BERT-shaped test encoder with random weights");
}

/**
 * A decoder-style model (pre-RMSNorm, causal attention, SwiGLU FFN, learned positions looked up by
 * `position_ids`). Inputs `input_ids`, `attention_mask`, `position_ids` [batch, sequence] int64;
 * output `last_hidden_state`. Correct with left or right padding when position ids come from the
 * mask (0 at a text's first real token); padded rows' outputs are meaningless but finite.
 */
export function buildTinyDecoderModel(options: TinyTransformerShape & { vocabSize: number }): ModelProto {
  const shape = resolveShape(options);
  const { hiddenSize, intermediateSize } = shape;
  const random = createRandom(shape.seed);
  const g = createGraphBuilder("tiny_decoder");
  const ids = g.input(valueInfo("input_ids", DataType.INT64, ["batch", "sequence"]));
  const mask = g.input(valueInfo("attention_mask", DataType.INT64, ["batch", "sequence"]));
  const positionIds = g.input(valueInfo("position_ids", DataType.INT64, ["batch", "sequence"]));

  const gather = (table: string, indices: string) => g.op("Gather", { inputs: [table, indices], attributes: { axis: { int: 0 } } });
  let hidden = g.op("Add", {
    inputs: [
      gather(weight(g, random, [options.vocabSize, hiddenSize], 1, "embed_tokens"), ids),
      gather(weight(g, random, [shape.maxPositions, hiddenSize], 0.5, "embed_positions"), positionIds),
    ],
  });
  const sequence = g.op("Shape", { inputs: [ids], attributes: { start: { int: 1 }, end: { int: 2 } } });
  const square = g.op("Concat", { inputs: [sequence, sequence], attributes: { axis: { int: 0 } } });
  const ones = g.op("ConstantOfShape", { inputs: [square], attributes: { value: { tensor: floatTensor("value", [1], [1]) } } });
  const causal = g.op("Trilu", { inputs: [ones], attributes: { upper: { int: 0 } } });
  const { maskFloat } = keyPaddingBias(g, mask);
  const allowed = g.op("Mul", { inputs: [causal, maskFloat] });
  const bias = g.op("Mul", { inputs: [g.op("Sub", { inputs: [allowed, g.constFloat([], [1])] }), g.constFloat([], [1e9])] });
  for (let layer = 0; layer < shape.layers; layer++) {
    const prefix = `layer${layer}`;
    const attended = attention(g, random, rmsNorm(g, random, hidden, hiddenSize, `${prefix}_input_norm`), bias, shape, `${prefix}_attention`, false);
    hidden = g.op("Add", { inputs: [hidden, attended] });
    const normed = rmsNorm(g, random, hidden, hiddenSize, `${prefix}_post_attention_norm`);
    const gate = linear(g, random, normed, hiddenSize, intermediateSize, `${prefix}_gate`, false);
    const up = linear(g, random, normed, hiddenSize, intermediateSize, `${prefix}_up`, false);
    const activated = g.op("Mul", { inputs: [g.op("Mul", { inputs: [gate, g.op("Sigmoid", { inputs: [gate] })] }), up] });
    hidden = g.op("Add", { inputs: [hidden, linear(g, random, activated, intermediateSize, hiddenSize, `${prefix}_down`, false)] });
  }
  return finishModel(g, rmsNorm(g, random, hidden, hiddenSize, "final_norm"), hiddenSize, "Tiny decoder-style test model with random weights");
}

/** The WordPiece tokenizer.json of the tiny BERT (BertNormalizer lowercase, [CLS] A [SEP]). */
function bertTokenizerJson(vocab: string[]) {
  const id = (token: string) => vocab.indexOf(token);
  const special = (token: string) => ({ id: id(token), content: token, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: BERT_SPECIAL_TOKENS.map(special),
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } }, { SpecialToken: { id: "[SEP]", type_id: 1 } },
      ],
      special_tokens: Object.fromEntries(["[CLS]", "[SEP]"].map((token) => [token, { id: token, ids: [id(token)], tokens: [token] }])),
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab.map((token, index) => [token, index])),
    },
  };
}

/** GPT-2's reversible byte -> printable character map used by byte-level BPE. */
function byteLevelAlphabet(): string[] {
  const direct = new Set<number>();
  for (let byte = 33; byte <= 126; byte++) direct.add(byte);
  for (let byte = 161; byte <= 172; byte++) direct.add(byte);
  for (let byte = 174; byte <= 255; byte++) direct.add(byte);
  let extra = 0;
  return Array.from({ length: 256 }, (_, byte) => String.fromCodePoint(direct.has(byte) ? byte : 256 + extra++));
}

/** Learns `count` BPE merges from the fixed corpus; ties go to the lexicographically smallest pair. */
function learnByteLevelMerges(count: number): string[][] {
  const alphabet = byteLevelAlphabet();
  const encoder = new TextEncoder();
  const frequencies = new Map<string, number>();
  for (const sentence of BPE_CORPUS) {
    for (const word of sentence.match(/ ?[\p{L}\p{N}]+| ?[^\s\p{L}\p{N}]+/gu) ?? []) {
      const symbols = Array.from(encoder.encode(word), (byte) => alphabet[byte]).join(" ");
      frequencies.set(symbols, (frequencies.get(symbols) ?? 0) + 1);
    }
  }
  let words = [...frequencies].map(([symbols, frequency]) => ({ symbols: symbols.split(" "), frequency }));
  const merges: string[][] = [];
  while (merges.length < count) {
    const pairs = new Map<string, number>();
    for (const { symbols, frequency } of words) {
      for (let index = 0; index + 1 < symbols.length; index++) {
        const pair = `${symbols[index]} ${symbols[index + 1]}`;
        pairs.set(pair, (pairs.get(pair) ?? 0) + frequency);
      }
    }
    const best = [...pairs].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))[0];
    if (!best) break;
    const [left, right] = best[0].split(" ");
    merges.push([left, right]);
    words = words.map(({ symbols, frequency }) => {
      const merged: string[] = [];
      for (let index = 0; index < symbols.length; index++) {
        if (symbols[index] === left && symbols[index + 1] === right) {
          merged.push(left + right);
          index++;
        } else merged.push(symbols[index]);
      }
      return { symbols: merged, frequency };
    });
  }
  return merges;
}

const DECODER_EOS = "<|endoftext|>";

/** The byte-level BPE tokenizer.json of the tiny decoder (appends <|endoftext|>, as Qwen3-Embedding does). */
function decoderTokenizerJson() {
  const merges = learnByteLevelMerges(96);
  const vocab = [...byteLevelAlphabet(), ...merges.map(([left, right]) => left + right)];
  const eosId = vocab.length;
  return {
    vocabSize: eosId + 1,
    eosId,
    json: {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: [{ id: eosId, content: DECODER_EOS, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
      normalizer: { type: "NFC" },
      pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: {
        type: "TemplateProcessing",
        single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: DECODER_EOS, type_id: 0 } }],
        pair: [
          { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: DECODER_EOS, type_id: 0 } },
          { Sequence: { id: "B", type_id: 1 } }, { SpecialToken: { id: DECODER_EOS, type_id: 1 } },
        ],
        special_tokens: { [DECODER_EOS]: { id: DECODER_EOS, ids: [eosId], tokens: [DECODER_EOS] } },
      },
      decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab: Object.fromEntries(vocab.map((token, index) => [token, index])),
        merges: merges.map(([left, right]) => `${left} ${right}`),
      },
    },
  };
}

async function writeJson(dir: string, file: string, value: unknown) {
  await mkdir(dirname(join(dir, file)), { recursive: true });
  await writeFile(join(dir, file), `${JSON.stringify(value, null, 2)}\n`);
}

function poolingConfig(hiddenSize: number, pooling: "mean" | "cls" | "last-token") {
  return {
    word_embedding_dimension: hiddenSize,
    pooling_mode_cls_token: pooling === "cls",
    pooling_mode_mean_tokens: pooling === "mean",
    pooling_mode_max_tokens: false,
    pooling_mode_mean_sqrt_len_tokens: false,
    pooling_mode_weightedmean_tokens: false,
    pooling_mode_lasttoken: pooling === "last-token",
    include_prompt: true,
  };
}

const SENTENCE_TRANSFORMERS_MODULES = [
  { idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
  { idx: 1, name: "1", path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
  { idx: 2, name: "2", path: "2_Normalize", type: "sentence_transformers.models.Normalize" },
];

/**
 * Writes a tiny BERT as a sentence-transformers folder: `onnx/model.onnx`, `tokenizer.json`
 * (WordPiece, ~160 tokens), `tokenizer_config.json`, `config.json`, `modules.json`,
 * `sentence_bert_config.json`, `1_Pooling/config.json` (mean or cls) and
 * `config_sentence_transformers.json` with prompts `{ query: "query: ", document: "" }`.
 */
export async function writeTinyBertModel(dir: string, options: TinyTransformerShape & { pooling?: "mean" | "cls" } = {}): Promise<TinyModelInfo> {
  const shape = resolveShape(options);
  const pooling = options.pooling ?? "mean";
  const vocab = tinyWordPieceVocab();
  await mkdir(join(dir, "onnx"), { recursive: true });
  await writeModel(join(dir, "onnx", "model.onnx"), buildTinyBertModel({ ...options, vocabSize: vocab.length }));
  await writeJson(dir, "tokenizer.json", bertTokenizerJson(vocab));
  await writeJson(dir, "tokenizer_config.json", {
    tokenizer_class: "BertTokenizer", do_lower_case: true, model_max_length: shape.maxPositions, padding_side: "right",
    pad_token: "[PAD]", unk_token: "[UNK]", cls_token: "[CLS]", sep_token: "[SEP]", mask_token: "[MASK]",
  });
  await writeJson(dir, "config.json", {
    architectures: ["BertModel"], model_type: "bert", vocab_size: vocab.length, hidden_size: shape.hiddenSize,
    num_hidden_layers: shape.layers, num_attention_heads: shape.heads, intermediate_size: shape.intermediateSize,
    hidden_act: "gelu", max_position_embeddings: shape.maxPositions, type_vocab_size: 2, layer_norm_eps: 1e-12, pad_token_id: 0,
  });
  await writeJson(dir, "modules.json", SENTENCE_TRANSFORMERS_MODULES);
  await writeJson(dir, "sentence_bert_config.json", { max_seq_length: shape.maxPositions, do_lower_case: false });
  await writeJson(dir, "1_Pooling/config.json", poolingConfig(shape.hiddenSize, pooling));
  await writeJson(dir, "config_sentence_transformers.json", {
    __version__: { sentence_transformers: "3.0.0" },
    prompts: { query: "query: ", document: "" },
    default_prompt_name: null,
    similarity_fn_name: "cosine",
  });
  return {
    dir, modelFile: "onnx/model.onnx", inputs: ["input_ids", "attention_mask", "token_type_ids"], output: "last_hidden_state",
    hiddenSize: shape.hiddenSize, vocabSize: vocab.length, padTokenId: 0, paddingSide: "right", pooling,
  };
}

/**
 * Writes a tiny decoder-style embedding model as a sentence-transformers folder (last-token pooling,
 * left padding, byte-level BPE `tokenizer.json` that appends `<|endoftext|>`, Qwen3-Embedding-style
 * prompts). Same file set as {@link writeTinyBertModel}.
 */
export async function writeTinyDecoderModel(dir: string, options: TinyTransformerShape = {}): Promise<TinyModelInfo> {
  const shape = resolveShape(options);
  const tokenizer = decoderTokenizerJson();
  await mkdir(join(dir, "onnx"), { recursive: true });
  await writeModel(join(dir, "onnx", "model.onnx"), buildTinyDecoderModel({ ...options, vocabSize: tokenizer.vocabSize }));
  await writeJson(dir, "tokenizer.json", tokenizer.json);
  await writeJson(dir, "tokenizer_config.json", {
    tokenizer_class: "Qwen2Tokenizer", model_max_length: shape.maxPositions, padding_side: "left",
    pad_token: DECODER_EOS, eos_token: DECODER_EOS, add_bos_token: false,
  });
  await writeJson(dir, "config.json", {
    architectures: ["Qwen3Model"], model_type: "qwen3", vocab_size: tokenizer.vocabSize, hidden_size: shape.hiddenSize,
    num_hidden_layers: shape.layers, num_attention_heads: shape.heads, num_key_value_heads: shape.heads,
    intermediate_size: shape.intermediateSize, hidden_act: "silu", max_position_embeddings: shape.maxPositions,
    rms_norm_eps: 1e-6, eos_token_id: tokenizer.eosId, pad_token_id: tokenizer.eosId,
  });
  await writeJson(dir, "modules.json", SENTENCE_TRANSFORMERS_MODULES);
  await writeJson(dir, "sentence_bert_config.json", { max_seq_length: shape.maxPositions, do_lower_case: false });
  await writeJson(dir, "1_Pooling/config.json", poolingConfig(shape.hiddenSize, "last-token"));
  await writeJson(dir, "config_sentence_transformers.json", {
    __version__: { sentence_transformers: "3.0.0" },
    prompts: { query: "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:", document: "" },
    default_prompt_name: null,
    similarity_fn_name: "cosine",
  });
  return {
    dir, modelFile: "onnx/model.onnx", inputs: ["input_ids", "attention_mask", "position_ids"], output: "last_hidden_state",
    hiddenSize: shape.hiddenSize, vocabSize: tokenizer.vocabSize, padTokenId: tokenizer.eosId, paddingSide: "left", pooling: "last-token",
  };
}

/**
 * Pads token id sequences into one batch of int64 feeds for the named inputs: `input_ids`,
 * `attention_mask` (1 on real tokens), `token_type_ids` (zeros) and `position_ids` (0, 1, ... over
 * each text's real tokens, 0 on padding). For tests and benchmarks; the service has its own batcher.
 */
export function paddedFeeds(
  sequences: readonly (readonly number[])[],
  options: { inputs: readonly string[]; padTokenId: number; paddingSide?: "left" | "right"; length?: number },
): Record<string, ort.Tensor> {
  const length = options.length ?? Math.max(...sequences.map((sequence) => sequence.length));
  const size = sequences.length * length;
  const ids = new BigInt64Array(size).fill(BigInt(options.padTokenId));
  const mask = new BigInt64Array(size);
  const positions = new BigInt64Array(size);
  sequences.forEach((sequence, row) => {
    const offset = row * length + (options.paddingSide === "left" ? length - sequence.length : 0);
    sequence.forEach((id, index) => {
      ids[offset + index] = BigInt(id);
      mask[offset + index] = 1n;
      positions[offset + index] = BigInt(index);
    });
  });
  const all: Record<string, BigInt64Array> = {
    input_ids: ids, attention_mask: mask, token_type_ids: new BigInt64Array(size), position_ids: positions,
  };
  return Object.fromEntries(options.inputs.map((name) => {
    const data = all[name];
    if (!data) throw new Error(`paddedFeeds: no rule for input ${name}`);
    return [name, new ort.Tensor("int64", data, [sequences.length, length])];
  }));
}
