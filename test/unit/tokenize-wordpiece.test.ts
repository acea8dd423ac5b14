import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTokenizer, type Tokenizer } from "../../src/tokenize/index.js";

const WORDS = [
  "[UNK]", "[CLS]", "[SEP]", "[PAD]",
  "the", "quick", "brown", "fox", "jump", "##s", "over", "lazy", "dog", "play", "##ing", "##ed",
  "search", "engine", "rank", "document", "by", "how", "well", "they", "match", "a", "query",
  "cafe", "is", "good", ".", ",", "!", "?", "un", "##believ", "##able", "embed", "##ding",
  "中", "文",
];
const id = (token: string): number => WORDS.indexOf(token);
const CLS = id("[CLS]");
const SEP = id("[SEP]");
const PAD = id("[PAD]");

const special = (content: string, tokenId: number): object => ({
  id: tokenId, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
});

/** A BERT-style tokenizer.json: lowercase BertNormalizer, BertPreTokenizer, WordPiece, [CLS] $A [SEP]. */
const TOKENIZER_JSON = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: ["[UNK]", "[CLS]", "[SEP]", "[PAD]"].map((token) => special(token, id(token))),
  normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
  pre_tokenizer: { type: "BertPreTokenizer" },
  post_processor: {
    type: "TemplateProcessing",
    single: [
      { SpecialToken: { id: "[CLS]", type_id: 0 } },
      { Sequence: { id: "A", type_id: 0 } },
      { SpecialToken: { id: "[SEP]", type_id: 0 } },
    ],
    pair: [
      { SpecialToken: { id: "[CLS]", type_id: 0 } },
      { Sequence: { id: "A", type_id: 0 } },
      { SpecialToken: { id: "[SEP]", type_id: 0 } },
      { Sequence: { id: "B", type_id: 1 } },
      { SpecialToken: { id: "[SEP]", type_id: 1 } },
    ],
    special_tokens: {
      "[CLS]": { id: "[CLS]", ids: [CLS], tokens: ["[CLS]"] },
      "[SEP]": { id: "[SEP]", ids: [SEP], tokens: ["[SEP]"] },
    },
  },
  decoder: { type: "WordPiece", prefix: "##", cleanup: true },
  model: {
    type: "WordPiece",
    unk_token: "[UNK]",
    continuing_subword_prefix: "##",
    max_input_chars_per_word: 100,
    vocab: Object.fromEntries(WORDS.map((word, index) => [word, index])),
  },
};

const folder = mkdtempSync(join(tmpdir(), "sutra-wordpiece-"));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

/** Writes the tokenizer (plus an optional tokenizer_config.json) into a model folder and loads it. */
async function load(name: string, maxTokens: number, options: { paddingSide?: "left" | "right"; config?: object } = {}): Promise<Tokenizer> {
  const dir = join(folder, name);
  mkdirSync(dir);
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(TOKENIZER_JSON));
  if (options.config) writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(options.config));
  return loadTokenizer(dir, { maxTokens, paddingSide: options.paddingSide });
}

const ids = (tokenizer: Tokenizer, text: string, truncate: "end" | "start" | "none" = "end"): number[] =>
  Array.from(tokenizer.encode(text, { truncate }).ids);

describe("WordPiece tokenizer (BERT-style tokenizer.json)", () => {
  let tokenizer: Tokenizer;
  beforeAll(async () => {
    tokenizer = await load("window-8", 8);
  });

  it("wraps the lowercased word pieces in [CLS] ... [SEP]", () => {
    expect(tokenizer.modelType).toBe("WordPiece");
    expect(tokenizer.vocabSize).toBe(WORDS.length);
    expect(ids(tokenizer, "The Quick fox jumps!")).toEqual([CLS, id("the"), id("quick"), id("fox"), id("jump"), id("##s"), id("!"), SEP]);
    expect(ids(tokenizer, "Unbelievable zebra 中文")).toEqual([CLS, id("un"), id("##believ"), id("##able"), id("[UNK]"), id("中"), id("文"), SEP]);
    expect(tokenizer.encode("the dog")).toEqual({ ids: Int32Array.from([CLS, id("the"), id("dog"), SEP]), truncated: false, fullLength: 4 });
  });

  it("truncates at the end keeping [CLS] and [SEP]", () => {
    const encoding = tokenizer.encode("the quick brown fox jumps over the lazy dog", { truncate: "end" });
    expect(Array.from(encoding.ids)).toEqual([CLS, id("the"), id("quick"), id("brown"), id("fox"), id("jump"), id("##s"), SEP]);
    expect(encoding.truncated).toBe(true);
    expect(encoding.fullLength).toBe(12);
  });

  it("truncates at the start keeping [CLS] and [SEP]", () => {
    const encoding = tokenizer.encode("the quick brown fox jumps over the lazy dog", { truncate: "start" });
    expect(Array.from(encoding.ids)).toEqual([CLS, id("jump"), id("##s"), id("over"), id("the"), id("lazy"), id("dog"), SEP]);
    expect(encoding.truncated).toBe(true);
  });

  it("keeps every token with truncate none and reports the full length for INPUT_TOO_LONG", () => {
    const encoding = tokenizer.encode("the quick brown fox jumps over the lazy dog", { truncate: "none" });
    expect(encoding.ids.length).toBe(12);
    expect(encoding.fullLength).toBe(12);
    expect(encoding.truncated).toBe(false);
    expect(encoding.ids[0]).toBe(CLS);
    expect(encoding.ids[11]).toBe(SEP);
  });

  it("gives [CLS] [SEP] for empty and whitespace-only text", () => {
    expect(ids(tokenizer, "")).toEqual([CLS, SEP]);
    expect(ids(tokenizer, " \t\n")).toEqual([CLS, SEP]);
  });

  it("encodes a batch as it encodes each text alone", () => {
    const texts = ["the dog", "the quick brown fox jumps over the lazy dog", "", "Embedding search!"];
    expect(tokenizer.encodeBatch(texts, { truncate: "start" })).toEqual(texts.map((text) => tokenizer.encode(text, { truncate: "start" })));
  });

  it("cuts long texts exactly as the full tokenization would be cut", async () => {
    const windowed = await load("window-16", 16);
    // A window no text reaches: `none` reads every text whole.
    const unbounded = await load("window-unbounded", Number.MAX_SAFE_INTEGER);
    const words = ["the", "Quick", "brown,", "fox", "jumps", "over", "lazy", "dog.", "playing", "zebra", "中文", "how", "well"];
    const separators = [" ", " ", " ", "  ", "\t", "\n", " \n "];
    let seed = 3;
    const random = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    for (let sample = 0; sample < 40; sample++) {
      let text = "";
      const length = 50 + Math.floor(random() * 2000);
      for (let word = 0; word < length; word++) text += words[Math.floor(random() * words.length)] + separators[Math.floor(random() * separators.length)];
      const full = ids(unbounded, text, "none");
      const content = full.slice(1, -1);
      const head = windowed.encode(text, { truncate: "end" });
      expect(Array.from(head.ids)).toEqual([CLS, ...content.slice(0, 14), SEP]);
      expect(head.fullLength).toBeLessThan(full.length);
      expect(ids(windowed, text, "start")).toEqual([CLS, ...content.slice(content.length - 14), SEP]);
      // truncate none stops reading as soon as the text is certainly longer than the window.
      const refused = windowed.encode(text, { truncate: "none" });
      expect(refused.fullLength).toBeGreaterThan(16);
      expect(refused.fullLength).toBeLessThan(full.length);
    }
  });

  it("reads a text without spaces whole up to 64 characters per token of the window, and counts a longer one as too long", async () => {
    const windowed = await load("window-16-long-words", 16);
    const UNK = id("[UNK]");
    // One word the model cannot split (longer than max_input_chars_per_word) is one [UNK], read whole.
    expect(windowed.encode("hello".repeat(200), { truncate: "none" })).toEqual({ ids: Int32Array.from([CLS, UNK, SEP]), truncated: false, fullLength: 3 });
    // 4 MB of it is not read whole: it counts as longer than the window, and `end` keeps the part read.
    const huge = "hello".repeat(800_000);
    expect(windowed.encode(huge, { truncate: "none" }).fullLength).toBeGreaterThan(16);
    expect(windowed.encode(huge, { truncate: "end" })).toEqual({ ids: Int32Array.from([CLS, UNK, SEP]), truncated: true, fullLength: 17 });
  });

  it("pads on the right with [PAD], mask 0 and position 0", () => {
    const batch = tokenizer.pad(tokenizer.encodeBatch(["the dog", "a"]));
    expect(batch).toMatchObject({ batchSize: 2, sequenceLength: 4 });
    expect(tokenizer.padId).toBe(PAD);
    expect(Array.from(batch.inputIds, Number)).toEqual([CLS, id("the"), id("dog"), SEP, CLS, id("a"), SEP, PAD]);
    expect(Array.from(batch.attentionMask, Number)).toEqual([1, 1, 1, 1, 1, 1, 1, 0]);
    expect(Array.from(batch.positionIds, Number)).toEqual([0, 1, 2, 3, 0, 1, 2, 0]);
  });

  it("pads on the left with positions counting from the first real token", async () => {
    const left = await load("left", 8, { paddingSide: "left" });
    expect(left.paddingSide).toBe("left");
    const batch = left.pad(left.encodeBatch(["the quick brown fox", "a", "the dog"]));
    expect(batch).toMatchObject({ batchSize: 3, sequenceLength: 6 });
    expect(Array.from(batch.inputIds, Number)).toEqual([
      CLS, id("the"), id("quick"), id("brown"), id("fox"), SEP,
      PAD, PAD, PAD, CLS, id("a"), SEP,
      PAD, PAD, CLS, id("the"), id("dog"), SEP,
    ]);
    expect(Array.from(batch.attentionMask, Number)).toEqual([1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1]);
    expect(Array.from(batch.positionIds, Number)).toEqual([0, 1, 2, 3, 4, 5, 0, 0, 0, 0, 1, 2, 0, 0, 0, 1, 2, 3]);
  });

  it("takes the padding side from tokenizer_config.json when the caller does not set it", async () => {
    expect((await load("config-left", 8, { config: { padding_side: "left" } })).paddingSide).toBe("left");
    expect((await load("config-override", 8, { config: { padding_side: "left" }, paddingSide: "right" })).paddingSide).toBe("right");
    expect(tokenizer.paddingSide).toBe("right");
  });

  it("refuses a window with no room beside the special tokens, and unknown model types", async () => {
    await expect(load("window-2", 2)).rejects.toThrow(/no room/);
    const dir = join(folder, "wordlevel");
    mkdirSync(dir);
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify({ ...TOKENIZER_JSON, model: { type: "WordLevel", vocab: {} } }));
    await expect(loadTokenizer(dir, { maxTokens: 8 })).rejects.toThrow(/unsupported tokenizer model type "WordLevel"/);
  });
});
