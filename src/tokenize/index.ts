export type { EncodeOptions, Encoding, LoadTokenizerOptions, PaddedBatch, PaddingSide, Tokenizer } from "./tokenizer.js";
export { loadTokenizer } from "./load-tokenizer.js";
export { padEncodings } from "./pad-encodings.js";
export { buildUseLiteTokenizerJson, USE_LITE_MODEL_TYPE } from "./use-lite-vocab.js";
