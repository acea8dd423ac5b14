import { USE_LITE_MODEL_TYPE, USE_LITE_NORMALIZER, type UseLiteModelJson } from "./use-lite-vocab.js";

/**
 * Reads the `model` section of a USE-Lite `tokenizer.json` document, checked before anything
 * is built from it: a vocab of `[piece, score]` pairs, `unk_id` naming a non-empty entry,
 * `reserved_count` within the vocab, and the reference normalizer with no pre-tokenizer,
 * post-processor or added tokens (the tokenizer implements only that pipeline, so any other
 * document would be tokenized wrongly rather than refused). Throws an Error saying what is
 * missing.
 */
export function readUseLiteModel(document: Record<string, unknown>): UseLiteModelJson {
  const model = document.model as Partial<UseLiteModelJson> | undefined;
  const vocab = model?.vocab;
  if (!Array.isArray(vocab) || !vocab.every((entry) => Array.isArray(entry) && typeof entry[0] === "string" && typeof entry[1] === "number")) {
    throw new Error(`${USE_LITE_MODEL_TYPE} model needs a vocab of [piece, score] pairs`);
  }
  const { unk_id: unkId, reserved_count: reservedCount } = model as UseLiteModelJson;
  if (!Number.isInteger(unkId) || unkId < 0 || unkId >= vocab.length || vocab[unkId][0].length === 0) {
    throw new Error(`${USE_LITE_MODEL_TYPE} model needs unk_id naming a non-empty vocab entry`);
  }
  if (!Number.isInteger(reservedCount) || reservedCount < 0 || reservedCount > vocab.length) {
    throw new Error(`${USE_LITE_MODEL_TYPE} model needs reserved_count within the vocab`);
  }
  if (JSON.stringify(document.normalizer) !== JSON.stringify(USE_LITE_NORMALIZER)
    || (document.pre_tokenizer ?? null) !== null
    || (document.post_processor ?? null) !== null
    || (Array.isArray(document.added_tokens) && document.added_tokens.length > 0)) {
    throw new Error(`${USE_LITE_MODEL_TYPE} supports only the reference normalizer, no pre-tokenizer, post-processor or added tokens`);
  }
  return model as UseLiteModelJson;
}
