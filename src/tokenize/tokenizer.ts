import type { TruncateMode } from "../domain/types.js";

/** Which end of a row padding goes to: `right` for encoders, `left` for decoder models. */
export type PaddingSide = "left" | "right";

/** Per-call encoding options. */
export interface EncodeOptions {
  /**
   * What to do with a text longer than the window (default `end`):
   * `end` keeps the first `maxTokens` tokens, `start` keeps the last ones (special tokens
   * such as [CLS]/[SEP] are kept in both), `none` keeps what it read so the caller can
   * reject the text with INPUT_TOO_LONG using `fullLength`. Whatever the mode, a text
   * longer than the window is read only as far as the window needs (a 4 MB text costs
   * about one window of it), and a text within it is read whole.
   */
  truncate?: TruncateMode;
}

/**
 * One tokenized text.
 *
 * `ids.length` is the number of tokens the model sees (special tokens included, never more
 * than `maxTokens` unless `truncate` was `none`, where it holds the tokens read).
 */
export interface Encoding {
  /** Token ids in model order, special tokens included, after truncation. */
  readonly ids: Int32Array;
  /** True when tokens were dropped to fit the window. */
  readonly truncated: boolean;
  /**
   * Token count of the whole text, special tokens included. Exact whenever the text fits
   * the window. For a longer text (truncated, or refused with `truncate: "none"`) it may be
   * a lower bound, still greater than `maxTokens`: tokenizers stop once that is certain.
   */
  readonly fullLength: number;
}

/**
 * A batch ready for onnxruntime: row-major `[batchSize, sequenceLength]` int64 tensors.
 * `sequenceLength` is the longest row (at least 1). Padding positions hold the pad id, mask 0
 * and position 0.
 */
export interface PaddedBatch {
  readonly inputIds: BigInt64Array;
  readonly attentionMask: BigInt64Array;
  /**
   * Positions of real tokens, counted 0..n-1 from the row's first real token whatever the
   * padding side (what decoder models such as Qwen3 expect with left padding).
   */
  readonly positionIds: BigInt64Array;
  readonly batchSize: number;
  readonly sequenceLength: number;
}

/**
 * The one tokenizer interface the service uses for every model, whatever the
 * `tokenizer.json` model type behind it. Encoding is synchronous and pure: the same text
 * always gives the same ids, whatever else is in the batch.
 */
export interface Tokenizer {
  /** Number of token ids (ids lie in `[0, vocabSize)`), added tokens included. */
  readonly vocabSize: number;
  /** The model window: most tokens an encoding keeps, special tokens included. */
  readonly maxTokens: number;
  /** Side `pad` puts padding on. */
  readonly paddingSide: PaddingSide;
  /** Id written into padding positions (masked out, so its value does not change results). */
  readonly padId: number;
  /** The `tokenizer.json` model type served (`WordPiece`, `BPE`, `Unigram`, `UseLiteUnigram`). */
  readonly modelType: string;
  /**
   * Tokenizes one text; see {@link EncodeOptions} for truncation.
   *
   * Empty input: `""` has no content tokens (USE-Lite gives no ids at all, as its reference
   * does; tokenizers with special tokens give only those, e.g. [CLS] [SEP]). The service
   * rejects empty strings with EMPTY_INPUT before tokenizing. Whitespace-only text is a valid
   * text: USE-Lite gives `▁` for the leading separator and for every space (`" "` is
   * `[30, 30]`) and an unknown id for tabs and newlines; BERT-style tokenizers drop it.
   */
  encode(text: string, options?: EncodeOptions): Encoding;
  /** `encode` for each text, in order. */
  encodeBatch(texts: readonly string[], options?: EncodeOptions): Encoding[];
  /** Pads encodings to the longest one on `paddingSide`, that length rounded up to a multiple of `alignment` (default 1). */
  pad(encodings: readonly Encoding[], alignment?: number): PaddedBatch;
}

/** Options of {@link Tokenizer} creation. */
export interface LoadTokenizerOptions {
  /** The model window in tokens, special tokens included; a positive integer. */
  maxTokens: number;
  /**
   * Padding side; when absent, the `tokenizer.json` `padding.direction`, then
   * `tokenizer_config.json` `padding_side`, then `right`.
   */
  paddingSide?: PaddingSide;
}
