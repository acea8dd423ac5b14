import { EmbedderError } from "../domain/errors.js";
import type { TruncateMode } from "../domain/types.js";
import type { Encoding, Tokenizer } from "../tokenize/index.js";

/**
 * Turns pre-tokenized inputs (the OpenAI dialect's token arrays) into the
 * encodings tokenization would have made: every id must lie in the model's
 * vocabulary (`[0, vocabSize)`, else INVALID_ARGUMENT naming the input, the
 * position and the vocabulary size); ids are taken as they are, special tokens
 * included, so an array from the model's own tokenizer embeds exactly as its
 * text does. Longer arrays are cut to the window like texts (`end` keeps the
 * first ids, `start` the last; `none` keeps all, for INPUT_TOO_LONG).
 */
export function encodeTokenIds(tokenIds: readonly number[][], tokenizer: Tokenizer, truncate: TruncateMode): Encoding[] {
  const { vocabSize, maxTokens } = tokenizer;
  return tokenIds.map((ids, index) => {
    const position = ids.findIndex((id) => !(Number.isInteger(id) && id >= 0 && id < vocabSize));
    if (position !== -1) {
      throw new EmbedderError("INVALID_ARGUMENT", `input[${index}][${position}] = ${ids[position]} is not a token id of the model (vocabulary size ${vocabSize})`, {
        details: { field: "input", index, position, vocab_size: vocabSize },
      });
    }
    const cut = truncate !== "none" && ids.length > maxTokens;
    const kept = !cut ? ids : truncate === "start" ? ids.slice(ids.length - maxTokens) : ids.slice(0, maxTokens);
    return { ids: Int32Array.from(kept), truncated: cut, fullLength: ids.length };
  });
}
