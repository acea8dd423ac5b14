import { readFileSync } from "node:fs";
import type { Tokenizer } from "../src/tokenize/index.js";

/** Token-count bounds of each corpus, in tokens of the default model's tokenizer (what the generator guarantees). */
export const CORPUS_LIMITS = {
  queries: { minTokens: 5, maxTokens: 20, minCount: 2000 },
  passages: { minTokens: 60, maxTokens: 128, minCount: 1000 },
} as const;

/** Names of the committed corpora in `bench/corpora/`. */
export type CorpusName = keyof typeof CORPUS_LIMITS;

/** One benchmark text with its token count (the model's window applied). */
export interface CorpusText {
  text: string;
  tokens: number;
}

/** A loaded corpus, in file order, with its token statistics. */
export interface Corpus {
  name: CorpusName;
  texts: CorpusText[];
  totalTokens: number;
  minTokens: number;
  maxTokens: number;
}

/** Reads a corpus's texts (no tokenizer needed: for processes that only send them). */
export function readCorpusTexts(name: CorpusName): string[] {
  return JSON.parse(readFileSync(new URL(`./corpora/${name}.json`, import.meta.url), "utf8")) as string[];
}

/**
 * Loads a committed corpus and counts its tokens with `tokenizer`. Throws when
 * the file breaks its bounds (too few texts, a text out of its token range), so
 * a hand-edited or stale corpus cannot silently change what is measured.
 */
export function loadCorpus(name: CorpusName, tokenizer: Tokenizer): Corpus {
  const limits = CORPUS_LIMITS[name];
  const texts = readCorpusTexts(name).map((text) => ({ text, tokens: tokenizer.encode(text).ids.length }));
  if (texts.length < limits.minCount) throw new Error(`bench/corpora/${name}.json has ${texts.length} texts; expected at least ${limits.minCount}`);
  const outOfRange = texts.find((entry) => entry.tokens < limits.minTokens || entry.tokens > limits.maxTokens);
  if (outOfRange) {
    throw new Error(`bench/corpora/${name}.json: "${outOfRange.text.slice(0, 60)}..." has ${outOfRange.tokens} tokens, outside ${limits.minTokens}-${limits.maxTokens}; rerun bench/corpora/generate-corpora.ts`);
  }
  const counts = texts.map((entry) => entry.tokens);
  return {
    name,
    texts,
    totalTokens: counts.reduce((sum, count) => sum + count, 0),
    minTokens: Math.min(...counts),
    maxTokens: Math.max(...counts),
  };
}
