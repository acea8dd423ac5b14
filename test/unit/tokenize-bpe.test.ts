import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTokenizer, type Tokenizer } from "../../src/tokenize/index.js";

// Byte-level alphabet for what the tests type: letters, "Ġ" (space), "Ċ" (newline), ".", "!".
const ALPHABET = [..."abcdefghijklmnopqrstuvwxyz", "Ġ", "Ċ", ".", "!"];
const MERGES = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d"];
const EOS = "<|endoftext|>";
const VOCAB = [...ALPHABET, ...MERGES.map((merge) => merge.replace(" ", "")), EOS];
const id = (token: string): number => VOCAB.indexOf(token);
const EOS_ID = id(EOS);

/** A Qwen3-style tokenizer.json: NFC, GPT-4-like split regex, byte-level BPE, `$A <|endoftext|>`. */
const TOKENIZER_JSON = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: [{ id: EOS_ID, content: EOS, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
  normalizer: { type: "NFC" },
  pre_tokenizer: {
    type: "Sequence",
    pretokenizers: [
      {
        type: "Split",
        pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
        behavior: "Isolated",
        invert: false,
      },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    ],
  },
  post_processor: {
    type: "TemplateProcessing",
    single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: EOS, type_id: 0 } }],
    pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }, { SpecialToken: { id: EOS, type_id: 1 } }],
    special_tokens: { [EOS]: { id: EOS, ids: [EOS_ID], tokens: [EOS] } },
  },
  decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
  model: {
    type: "BPE",
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: "",
    end_of_word_suffix: "",
    fuse_unk: false,
    byte_fallback: false,
    ignore_merges: false,
    vocab: Object.fromEntries(VOCAB.map((token, index) => [token, index])),
    merges: MERGES,
  },
};

const folder = mkdtempSync(join(tmpdir(), "sutra-bpe-"));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

async function load(name: string, maxTokens: number): Promise<Tokenizer> {
  const dir = join(folder, name);
  mkdirSync(dir);
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(TOKENIZER_JSON));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ padding_side: "left", pad_token: EOS }));
  return loadTokenizer(join(dir, "tokenizer.json"), { maxTokens });
}

const ids = (tokenizer: Tokenizer, text: string, truncate: "end" | "start" | "none" = "end"): number[] =>
  Array.from(tokenizer.encode(text, { truncate }).ids);

describe("byte-level BPE tokenizer (decoder model, Qwen3-style)", () => {
  let tokenizer: Tokenizer;
  beforeAll(async () => {
    tokenizer = await load("window-4", 4);
  });

  it("merges byte-level pieces and appends the end-of-text token", () => {
    expect(tokenizer.modelType).toBe("BPE");
    expect(ids(tokenizer, "hello", "none")).toEqual([id("hello"), EOS_ID]);
    expect(ids(tokenizer, "hello world", "none")).toEqual([id("hello"), id("Ġworld"), EOS_ID]);
    expect(ids(tokenizer, "hello there!", "none")).toEqual([id("hello"), id("Ġ"), id("t"), id("he"), id("r"), id("e"), id("!"), EOS_ID]);
  });

  it("keeps the end-of-text token when truncating, at either end", () => {
    const text = "hello world hello world";
    expect(ids(tokenizer, text, "none")).toEqual([id("hello"), id("Ġworld"), id("Ġ"), id("hello"), id("Ġworld"), EOS_ID]);
    expect(ids(tokenizer, text, "end")).toEqual([id("hello"), id("Ġworld"), id("Ġ"), EOS_ID]);
    expect(ids(tokenizer, text, "start")).toEqual([id("Ġ"), id("hello"), id("Ġworld"), EOS_ID]);
    expect(tokenizer.encode(text).truncated).toBe(true);
  });

  it("pads on the left (tokenizer_config.json) with the pad token, positions from the first real token", () => {
    expect(tokenizer.paddingSide).toBe("left");
    expect(tokenizer.padId).toBe(EOS_ID);
    const batch = tokenizer.pad(tokenizer.encodeBatch(["hello world", "hello"]));
    expect(batch).toMatchObject({ batchSize: 2, sequenceLength: 3 });
    expect(Array.from(batch.inputIds, Number)).toEqual([id("hello"), id("Ġworld"), EOS_ID, EOS_ID, id("hello"), EOS_ID]);
    expect(Array.from(batch.attentionMask, Number)).toEqual([1, 1, 1, 0, 1, 1]);
    expect(Array.from(batch.positionIds, Number)).toEqual([0, 1, 2, 0, 0, 1]);
  });

  it("cuts long texts exactly as the full tokenization would be cut", async () => {
    const windowed = await load("window-32", 32);
    // A window no text reaches: `none` reads every text whole.
    const unbounded = await load("window-unbounded", Number.MAX_SAFE_INTEGER);
    const words = ["hello", "world", "hello.", "world!", "ok", "\n", "the", "word"];
    const separators = [" ", " ", "  ", "\n", " \n", ""];
    let seed = 11;
    const random = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    for (let sample = 0; sample < 30; sample++) {
      let text = "";
      const length = 100 + Math.floor(random() * 1500);
      for (let word = 0; word < length; word++) text += words[Math.floor(random() * words.length)] + separators[Math.floor(random() * separators.length)];
      const content = ids(unbounded, text, "none").slice(0, -1);
      const head = windowed.encode(text, { truncate: "end" });
      expect(Array.from(head.ids)).toEqual([...content.slice(0, 31), EOS_ID]);
      expect(head.fullLength).toBeLessThan(content.length + 1);
      expect(ids(windowed, text, "start")).toEqual([...content.slice(content.length - 31), EOS_ID]);
      // truncate none stops reading as soon as the text is certainly longer than the window.
      const refused = windowed.encode(text, { truncate: "none" });
      expect(refused.fullLength).toBeGreaterThan(32);
      expect(refused.fullLength).toBeLessThan(content.length + 1);
    }
  });
});
