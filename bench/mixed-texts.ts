/**
 * The mixed-length texts of the peer comparison (issue 15): English queries, sentences, passages and
 * long paragraphs built from the committed corpora (bench/corpora), in a fixed shuffled order, so that
 * token counts have a mean of 20-30 with about 5% past a 256-token window, as a real ingestion
 * corpus has a few long documents among many short texts.
 */
import { readCorpusTexts } from "./corpora.js";

/** How many texts of each kind: 2,400 in all (75 batches of 32), 5% of them past the window. */
export const MIXED_TEXT_COUNTS = { queries: 1_800, sentences: 432, passages: 48, paragraphs: 120 } as const;

/** The window the long paragraphs go past, in tokens (all-MiniLM-L6-v2's). */
export const MIXED_TEXTS_WINDOW = 256;

/** Seed of the shuffles: a fixed one, so every run sends the same texts in the same order. */
const SEED = 15;

/** Most sentences a paragraph takes beyond the window, drawn uniformly, so long texts vary in length. */
const MAX_EXTRA_SENTENCES = 4;

/** mulberry32: a small seeded PRNG returning numbers in [0, 1). */
function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), state | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** A shuffled copy of `items` (Fisher-Yates). */
function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let index = copy.length - 1; index > 0; index--) {
    const other = Math.floor(random() * (index + 1));
    [copy[index], copy[other]] = [copy[other], copy[index]];
  }
  return copy;
}

const splitSentences = (passage: string): string[] => passage.split(/(?<=[.!?])\s+/);

/**
 * Tokens of `text` in a BERT WordPiece tokenizer whose vocabulary holds every word of the corpora
 * (the MiniLM-shaped model's): one per word or punctuation mark (BertPreTokenizer's split), plus
 * [CLS] and [SEP]. The peer phase measures the real counts with the model's tokenizer.
 */
export function bertTokenCount(text: string): number {
  return (text.match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu) ?? []).length + 2;
}

/**
 * The texts, always the same ones in the same order: {@link MIXED_TEXT_COUNTS} queries (5-20
 * tokens), single sentences of passages, whole passages (60-128 tokens), and paragraphs made by
 * joining the sentences of consecutive passages until they pass {@link MIXED_TEXTS_WINDOW} tokens,
 * then 0-4 sentences more; all of them shuffled together with a seeded PRNG (neither sorted nor
 * grouped by kind).
 */
export function mixedTexts(): string[] {
  const random = createRandom(SEED);
  const queries = shuffled(readCorpusTexts("queries"), random).slice(0, MIXED_TEXT_COUNTS.queries);
  const passages = shuffled(readCorpusTexts("passages"), random);
  const sentences = shuffled(passages.flatMap(splitSentences), random).slice(0, MIXED_TEXT_COUNTS.sentences);
  const wholePassages = passages.slice(0, MIXED_TEXT_COUNTS.passages);
  const paragraphSentences = passages.slice(MIXED_TEXT_COUNTS.passages).flatMap(splitSentences);
  const paragraphs: string[] = [];
  let next = 0;
  const takeSentence = () => paragraphSentences[next++ % paragraphSentences.length];
  while (paragraphs.length < MIXED_TEXT_COUNTS.paragraphs) {
    const parts: string[] = [];
    while (bertTokenCount(parts.join(" ")) <= MIXED_TEXTS_WINDOW) parts.push(takeSentence());
    for (let extra = Math.floor(random() * (MAX_EXTRA_SENTENCES + 1)); extra > 0; extra--) parts.push(takeSentence());
    paragraphs.push(parts.join(" "));
  }
  return shuffled([...queries, ...sentences, ...wholePassages, ...paragraphs], random);
}
