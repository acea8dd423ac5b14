import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { paddedFeeds, writeTinyBertModel, writeTinyDecoderModel, type TinyModelInfo } from "../support/tiny-models.js";

const readJson = async (dir: string, file: string) => JSON.parse(await readFile(join(dir, file), "utf8"));

async function loadTokenizer(dir: string): Promise<Tokenizer> {
  return new Tokenizer(await readJson(dir, "tokenizer.json"), await readJson(dir, "tokenizer_config.json"));
}

/** Runs `sequences` as one padded batch and returns each text's real-token rows. */
async function tokenRows(session: ort.InferenceSession, info: TinyModelInfo, sequences: number[][], paddingSide: "left" | "right", padWith?: number) {
  const feeds = paddedFeeds(sequences, { inputs: info.inputs, padTokenId: info.padTokenId, paddingSide });
  if (padWith !== undefined) {
    const ids = feeds.input_ids.data as BigInt64Array;
    const mask = feeds.attention_mask.data as BigInt64Array;
    ids.forEach((_, index) => { if (mask[index] === 0n) ids[index] = BigInt(padWith); });
  }
  const output = (await session.run(feeds))[info.output];
  const data = output.data as Float32Array;
  const [, length, hidden] = output.dims as number[];
  expect(hidden).toBe(info.hiddenSize);
  return sequences.map((sequence, row) => {
    const start = (row * length + (paddingSide === "left" ? length - sequence.length : 0)) * hidden;
    return data.slice(start, start + sequence.length * hidden);
  });
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  return a.reduce((worst, value, index) => Math.max(worst, Math.abs(value - b[index])), 0);
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "sutra-tiny-models-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("tiny BERT", () => {
  let info: TinyModelInfo;
  let session: ort.InferenceSession;
  beforeAll(async () => {
    info = await writeTinyBertModel(join(root, "bert-mean"), { pooling: "mean" });
    session = await ort.InferenceSession.create(join(info.dir, info.modelFile));
  });
  afterAll(() => session.release());

  it("is a sentence-transformers folder with mean or cls pooling and query/document prompts", async () => {
    const cls = await writeTinyBertModel(join(root, "bert-cls"), { pooling: "cls" });
    expect((await readJson(info.dir, "1_Pooling/config.json")).pooling_mode_mean_tokens).toBe(true);
    expect((await readJson(cls.dir, "1_Pooling/config.json")).pooling_mode_cls_token).toBe(true);
    expect((await readJson(cls.dir, "1_Pooling/config.json")).pooling_mode_mean_tokens).toBe(false);
    expect((await readJson(info.dir, "config_sentence_transformers.json")).prompts).toEqual({ query: "query: ", document: "" });
    expect((await readJson(info.dir, "modules.json")).map((module: { path: string }) => module.path)).toEqual(["", "1_Pooling", "2_Normalize"]);
    const config = await readJson(info.dir, "config.json");
    expect(config).toMatchObject({ model_type: "bert", hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, vocab_size: info.vocabSize });
    expect([...session.inputNames].sort()).toEqual(["attention_mask", "input_ids", "token_type_ids"]);
    expect(session.outputNames).toEqual(["last_hidden_state"]);
  });

  it("is deterministic: the same options write the same bytes", async () => {
    const again = await writeTinyBertModel(join(root, "bert-again"), { pooling: "mean" });
    expect(Buffer.compare(await readFile(join(again.dir, again.modelFile)), await readFile(join(info.dir, info.modelFile)))).toBe(0);
    const reseeded = await writeTinyBertModel(join(root, "bert-seed-2"), { pooling: "mean", seed: 2 });
    expect(Buffer.compare(await readFile(join(reseeded.dir, reseeded.modelFile)), await readFile(join(info.dir, info.modelFile)))).not.toBe(0);
  });

  it("has a WordPiece tokenizer.json (lowercase, [CLS] ... [SEP], ## pieces, [UNK])", async () => {
    const tokenizer = await loadTokenizer(info.dir);
    expect(tokenizer.tokenize("The Quick fox JUMPS!", { add_special_tokens: true })).toEqual(["[CLS]", "the", "quick", "fox", "jump", "##s", "!", "[SEP]"]);
    const ids = tokenizer.encode("hello 世界").ids;
    expect(ids[0]).toBe(tokenizer.token_to_id("[CLS]"));
    expect(ids).toContain(tokenizer.token_to_id("[UNK]"));
    expect(ids.at(-1)).toBe(tokenizer.token_to_id("[SEP]"));
    expect(tokenizer.token_to_id("[PAD]")).toBe(info.padTokenId);
  });

  it("runs, and padding (whatever its ids) does not change a text's token vectors", async () => {
    const tokenizer = await loadTokenizer(info.dir);
    const sequences = ["Hello world!", "The quick brown fox jumps over the lazy dog, embedding sentences today.", "Paris"]
      .map((text) => tokenizer.encode(text).ids);
    const batched = await tokenRows(session, info, sequences, "right");
    const noisyPadding = await tokenRows(session, info, sequences, "right", 42);
    for (const [row, sequence] of sequences.entries()) {
      const [alone] = await tokenRows(session, info, [sequence], "right");
      expect(alone.every(Number.isFinite)).toBe(true);
      expect(maxAbsDifference(alone, batched[row])).toBeLessThanOrEqual(1e-6);
      expect(maxAbsDifference(alone, noisyPadding[row])).toBeLessThanOrEqual(1e-6);
    }
    expect(maxAbsDifference(batched[0].slice(0, 32), batched[1].slice(0, 32))).toBeGreaterThan(0.01);
  });
});

describe("tiny decoder", () => {
  let info: TinyModelInfo;
  let session: ort.InferenceSession;
  beforeAll(async () => {
    info = await writeTinyDecoderModel(join(root, "decoder"));
    session = await ort.InferenceSession.create(join(info.dir, info.modelFile));
  });
  afterAll(() => session.release());

  it("is a last-token, left-padded sentence-transformers folder taking position_ids", async () => {
    expect((await readJson(info.dir, "1_Pooling/config.json")).pooling_mode_lasttoken).toBe(true);
    expect((await readJson(info.dir, "tokenizer_config.json")).padding_side).toBe("left");
    expect(info.paddingSide).toBe("left");
    expect([...session.inputNames].sort()).toEqual(["attention_mask", "input_ids", "position_ids"]);
  });

  it("has a byte-level BPE tokenizer.json that appends <|endoftext|> and decodes back", async () => {
    const tokenizer = await loadTokenizer(info.dir);
    const text = "The quick brown fox, naïve café!";
    const { ids } = tokenizer.encode(text);
    expect(ids.at(-1)).toBe(info.padTokenId);
    expect(tokenizer.token_to_id("<|endoftext|>")).toBe(info.padTokenId);
    expect(ids.length).toBeLessThan(new TextEncoder().encode(text).length);
    expect(tokenizer.decode(ids, { skip_special_tokens: true })).toBe(text);
  });

  it("gives a text the same token vectors alone, left-padded and right-padded, and attends causally", async () => {
    const tokenizer = await loadTokenizer(info.dir);
    const sequences = ["Hello world!", "What is the capital of France? Paris is the capital of France.", "a"].map((text) => tokenizer.encode(text).ids);
    const left = await tokenRows(session, info, sequences, "left");
    const right = await tokenRows(session, info, sequences, "right");
    const noisyLeft = await tokenRows(session, info, sequences, "left", 7);
    for (const [row, sequence] of sequences.entries()) {
      const [alone] = await tokenRows(session, info, [sequence], "left");
      expect(maxAbsDifference(alone, left[row])).toBeLessThanOrEqual(1e-6);
      expect(maxAbsDifference(alone, right[row])).toBeLessThanOrEqual(1e-6);
      expect(maxAbsDifference(alone, noisyLeft[row])).toBeLessThanOrEqual(1e-6);
    }
    // Causal: a prefix's vectors do not see the tokens after it.
    const [prefix] = await tokenRows(session, info, [sequences[1].slice(0, 4)], "left");
    expect(maxAbsDifference(prefix, left[1].slice(0, 4 * info.hiddenSize))).toBeLessThanOrEqual(1e-6);
  });
});
