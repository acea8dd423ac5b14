import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bertTokenCount, MIXED_TEXTS_WINDOW, mixedTexts } from "../../bench/mixed-texts.js";
import { loadTokenizer, type Tokenizer } from "../../src/tokenize/index.js";
import { tinyWordPieceVocab, writeTinyBertModel } from "../support/tiny-models.js";

const folder = mkdtempSync(join(tmpdir(), "sutra-mixed-texts-"));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

const texts = mixedTexts();
const counts = texts.map(bertTokenCount);

/** A WordPiece tokenizer whose vocabulary holds every word of the texts, as the peer phase's model has. */
let wordPiece: Tokenizer;
beforeAll(async () => {
  await writeTinyBertModel(folder);
  const file = join(folder, "tokenizer.json");
  const tokenizer = JSON.parse(readFileSync(file, "utf8")) as { model: { vocab: Record<string, number> } };
  const words = new Set(texts.flatMap((text) => text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []));
  const vocab = [...new Set([...tinyWordPieceVocab(), ...words])];
  tokenizer.model.vocab = Object.fromEntries(vocab.map((token, index) => [token, index]));
  writeFileSync(file, JSON.stringify(tokenizer));
  wordPiece = await loadTokenizer(file, { maxTokens: 4096 });
});

describe("mixedTexts", () => {
  it("gives at least 2,000 texts, the same ones in the same order on every call", () => {
    expect(texts.length).toBeGreaterThanOrEqual(2000);
    expect(mixedTexts()).toEqual(texts);
  });

  it("has a mean of 20-30 tokens with about 5% of the texts past the window", () => {
    const mean = counts.reduce((sum, count) => sum + count, 0) / counts.length;
    const pastWindow = counts.filter((count) => count > MIXED_TEXTS_WINDOW).length / counts.length;
    expect(mean).toBeGreaterThanOrEqual(20);
    expect(mean).toBeLessThanOrEqual(30);
    expect(pastWindow).toBeGreaterThanOrEqual(0.04);
    expect(pastWindow).toBeLessThanOrEqual(0.06);
  });

  it("is shuffled: neither sorted by length nor grouped, long texts spread over the order", () => {
    const ascending = counts.filter((count, index) => index > 0 && count >= counts[index - 1]).length / (counts.length - 1);
    expect(ascending).toBeGreaterThan(0.3);
    expect(ascending).toBeLessThan(0.7);
    const longPositions = counts.flatMap((count, index) => (count > MIXED_TEXTS_WINDOW ? [index] : []));
    const halves = [longPositions.filter((index) => index < counts.length / 2).length, longPositions.filter((index) => index >= counts.length / 2).length];
    expect(Math.min(...halves)).toBeGreaterThan(longPositions.length / 4);
  });

  it("counts tokens as a WordPiece tokenizer whose vocabulary holds every word of the texts", () => {
    expect(texts.map((text) => wordPiece.encode(text).ids.length)).toEqual(counts);
  });
});
