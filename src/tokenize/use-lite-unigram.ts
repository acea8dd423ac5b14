import type { TruncateMode } from "../domain/types.js";
import { createUseLiteViterbi } from "./create-use-lite-viterbi.js";
import { padEncodings } from "./pad-encodings.js";
import { readUseLiteModel } from "./read-use-lite-model.js";
import type { Encoding, PaddingSide, Tokenizer } from "./tokenizer.js";
import { USE_LITE_MODEL_TYPE } from "./use-lite-vocab.js";

/**
 * Tokens past the window a read must show before a cut is trusted: a path found through part
 * of a text differs from the whole text's only in the few tokens next to where it was cut.
 */
const CUT_MARGIN_TOKENS = 8;

/**
 * Where a tail of `text` at least `length` characters long starts: right after the last
 * U+0020 at or before `text.length - length` when one lies within another `length`
 * characters, else at that position (never between the halves of a surrogate pair).
 */
function tailStart(text: string, length: number): number {
  const at = text.length - length;
  const space = text.lastIndexOf(" ", at);
  if (space !== -1 && space >= at - length) return space + 1;
  const unit = text.charCodeAt(at);
  return unit >= 0xdc00 && unit <= 0xdfff ? at - 1 : at;
}

/**
 * Creates the Universal Sentence Encoder Lite tokenizer from its `tokenizer.json` document
 * (see `buildUseLiteTokenizerJson`). Ids equal the reference's (`@energetic-ai/embeddings`
 * `Tokenizer.encode`) for every text, its quirks included:
 * - NFKC; a non-empty text gets a leading `▁` and every U+0020 becomes `▁`; cased;
 * - Viterbi over code points with pieces from `reserved_count` up; where no piece starts, one
 *   code point becomes `unk_id` with score 0;
 * - best scores start at 0 and a 0 best counts as unset (any later candidate replaces it),
 *   ties go to the later candidate (the shorter piece), candidates are tried by end position
 *   then start position;
 * - the backtrack steps back by each piece's UTF-16 length (as the reference does);
 * - runs of unknown ids are merged into one; the empty text has no tokens.
 *
 * A text longer than the window is read only as far as the window needs, so a 4 MB text
 * costs about what its first (or last) window does; texts within the window are always read
 * whole, with the reference's ids. This needs every piece to be as long in UTF-16 units as in
 * code points (true of the published vocabulary); otherwise every text is read whole.
 * - `end` and `none`: the Viterbi stops once more than `maxTokens` ids are final (at a
 *   position no piece crosses every path goes through it, so the ids before it are final), or
 *   once every path through the last positions read has more tokens than the window allows
 *   (`none`: `maxTokens`, so the text is refused; `end`: `maxTokens` plus a margin of 8, for
 *   a long run such as "aaaa…" that no position divides; its first ids then come from the best
 *   path through the part read). The rest of the text is neither normalized nor read, and
 *   `fullLength` is a lower bound, still more than `maxTokens`.
 * - `start`: a tail of `(maxTokens + 8) × longest piece` characters, doubled until it holds
 *   more than `maxTokens + 8` tokens. It starts after a space where one is near: no piece of
 *   the published vocabulary crosses a space, so the tail's ids are the whole text's (float
 *   rounding of the scores a best path carries aside); else between code points, the margin
 *   keeping the tokens the cut changes out of the window.
 */
export function createUseLiteUnigramTokenizer(
  document: Record<string, unknown>,
  options: { maxTokens: number; paddingSide: PaddingSide },
): Tokenizer {
  const model = readUseLiteModel(document);
  const { maxTokens, paddingSide } = options;
  const viterbi = createUseLiteViterbi(model, maxTokens);
  const { depth, canStopEarly, read } = viterbi;

  /** The last `maxTokens` ids (`truncate: "start"`), from a tail long enough to hold them when the text allows. */
  const encodeTail = (text: string): Encoding => {
    const enough = maxTokens + CUT_MARGIN_TOKENS;
    for (let length = canStopEarly ? enough * depth : text.length; length < text.length; length *= 2) {
      const count = read(text.slice(tailStart(text, length)), undefined);
      if (count > enough) return { ids: viterbi.tokens().slice(count - maxTokens, count), truncated: true, fullLength: count };
    }
    const count = read(text, undefined);
    return { ids: viterbi.tokens().slice(Math.max(0, count - maxTokens), count), truncated: count > maxTokens, fullLength: count };
  };

  const encode = (text: string, truncate: TruncateMode = "end"): Encoding => {
    // NFKC never empties a non-empty text, so only "" has no tokens (the reference adds no ▁).
    if (text.length === 0) return { ids: new Int32Array(0), truncated: false, fullLength: 0 };
    if (truncate === "start") return encodeTail(text);
    const certain = truncate === "none" ? maxTokens : maxTokens + CUT_MARGIN_TOKENS;
    const count = read(text, canStopEarly ? { committed: maxTokens, certain } : undefined);
    return {
      ids: viterbi.tokens().slice(0, truncate === "none" ? count : Math.min(count, maxTokens)),
      truncated: truncate !== "none" && count > maxTokens,
      fullLength: count,
    };
  };

  return {
    vocabSize: model.vocab.length,
    maxTokens,
    paddingSide,
    padId: 0,
    modelType: USE_LITE_MODEL_TYPE,
    encode: (text, encodeOptions) => encode(text, encodeOptions?.truncate),
    encodeBatch: (texts, encodeOptions) => texts.map((text) => encode(text, encodeOptions?.truncate)),
    pad: (encodings, alignment) => padEncodings(encodings, paddingSide, 0, alignment),
  };
}
