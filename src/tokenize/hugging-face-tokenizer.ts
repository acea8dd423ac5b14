import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import type { TruncateMode } from "../domain/types.js";
import { padEncodings } from "./pad-encodings.js";
import type { Encoding, PaddingSide, Tokenizer } from "./tokenizer.js";

/** Model types served through `@huggingface/tokenizers`. */
export const HUGGING_FACE_MODEL_TYPES = ["WordPiece", "BPE", "Unigram"] as const;

/**
 * Tokens kept beyond the window when only part of a long text is tokenized, so that a token
 * changed by the cut (the last one of a prefix, the first one of a suffix) is never kept.
 */
const CUT_MARGIN_TOKENS = 8;
/** First guess of characters per token when sizing the part of a long text to tokenize. */
const CHARS_PER_TOKEN_GUESS = 6;
/**
 * Most characters read per token the window needs. Beyond `(window + margin) × this` a text
 * is not read further: its part read holds the window's tokens, or it is made of words the
 * model cannot split (each one unknown token), and either way counts as longer than the window.
 */
const MAX_CHARS_PER_TOKEN = 64;
const SEQUENCE_PLACEHOLDER = "\u0000sutra:sequence\u0000";

/** A place where a text can be cut: a U+0020 space right after a non-space character. */
function isCut(text: string, index: number): boolean {
  return index > 0 && text.charCodeAt(index) === 0x20 && !/\s/.test(text[index - 1]);
}

/** `index`, moved back off the second half of a surrogate pair. */
function codePointBoundary(text: string, index: number): number {
  const unit = text.charCodeAt(index);
  return unit >= 0xdc00 && unit <= 0xdfff ? index - 1 : index;
}

/**
 * The text up to the first cut at or after `length` characters when one comes within another
 * `length`, else its first `length` characters (a text without spaces, cut between code points).
 */
function prefixOf(text: string, length: number): string {
  for (let index = text.indexOf(" ", length); index !== -1 && index <= 2 * length; index = text.indexOf(" ", index + 1)) {
    if (isCut(text, index)) return text.slice(0, index);
  }
  return text.slice(0, codePointBoundary(text, length));
}

/** The text from the last cut at or before `text.length - length` when one lies within another `length`, else its last `length` characters. */
function suffixOf(text: string, length: number): string {
  const earliest = text.length - 2 * length;
  for (let index = text.lastIndexOf(" ", text.length - length); index > 0 && index >= earliest; index = text.lastIndexOf(" ", index - 1)) {
    if (isCut(text, index)) return text.slice(index);
  }
  return text.slice(codePointBoundary(text, text.length - length));
}

/** Padding side and pad id a `tokenizer.json` / `tokenizer_config.json` pair declares. */
function declaredPadding(
  document: Record<string, unknown>,
  config: Record<string, unknown>,
  idOf: (token: string) => number | undefined,
): { side?: PaddingSide; padId?: number } {
  const padding = document.padding as { direction?: string; pad_id?: number } | null | undefined;
  const configSide = config.padding_side;
  const side = padding?.direction === "Left" ? "left"
    : padding?.direction === "Right" ? "right"
      : configSide === "left" || configSide === "right" ? configSide : undefined;
  const padToken = config.pad_token;
  const padName = typeof padToken === "string" ? padToken
    : typeof padToken === "object" && padToken !== null ? (padToken as { content?: string }).content : undefined;
  const padId = padding?.pad_id
    ?? (padName === undefined ? undefined : idOf(padName))
    ?? idOf("[PAD]")
    ?? idOf("<pad>");
  return { side, padId };
}

/**
 * Creates a tokenizer for Hugging Face `tokenizer.json` documents whose model is WordPiece
 * (BERT-style, [CLS]/[SEP] from the post-processor), BPE (byte-level decoder models such as
 * Qwen3, or SentencePiece BPE) or Unigram, tokenized by `@huggingface/tokenizers`.
 * `config` is the folder's `tokenizer_config.json` (or `{}`).
 *
 * The library has no truncation, padding or batching; this adds them. Special tokens come
 * from the post-processor around the content: truncation cuts the content to
 * `maxTokens` minus the special tokens (`end` keeps its start, `start` its end), so special
 * tokens are always kept. On a long text only a part of it is tokenized, whatever the
 * truncation (`none` too: a text is refused once it is certain to be too long): a prefix
 * (`start`: a suffix) ending (starting) at a space after a non-space character, which
 * pre-tokenizers that split on whitespace (BERT, byte-level, Metaspace) tokenize exactly as
 * the whole text, or cut between code points when no space is near; it grows from 6
 * characters per token of the window plus a margin of 8 tokens until it holds them, and the
 * margin keeps the tokens a cut changes out of the window. `fullLength` is then a lower bound
 * past the window. Texts within the window are read whole (exact ids), except one longer than
 * 64 characters per token of the window: that is words the model cannot split, and counts as
 * longer than the window (its first part read is kept). Padding: `paddingSide`, else what the documents declare, else right; pad id
 * from `padding.pad_id`, the config's `pad_token`, `[PAD]` or `<pad>`, else 0. Throws when
 * the post-processor does not keep the text as one run, or leaves no room for content.
 */
export function createHuggingFaceTokenizer(
  document: Record<string, unknown>,
  config: Record<string, unknown>,
  options: { maxTokens: number; paddingSide?: PaddingSide },
): Tokenizer {
  const modelType = String((document.model as { type?: unknown } | undefined)?.type);
  const hf = new HfTokenizer(document, config);
  const idOf = (token: string): number | undefined => hf.token_to_id(token);

  const template = hf.post_processor?.post_process([SEQUENCE_PLACEHOLDER], null, true).tokens ?? [SEQUENCE_PLACEHOLDER];
  const at = template.indexOf(SEQUENCE_PLACEHOLDER);
  if (at === -1 || template.lastIndexOf(SEQUENCE_PLACEHOLDER) !== at) {
    throw new Error(`tokenizer post-processor ${String((document.post_processor as { type?: unknown }).type)} does not keep the text as one run`);
  }
  const specialIds = (tokens: string[]): number[] => tokens.map((token) => {
    const id = idOf(token);
    if (id === undefined) throw new Error(`special token ${token} is not in the vocabulary`);
    return id;
  });
  const prefix = specialIds(template.slice(0, at));
  const suffix = specialIds(template.slice(at + 1));
  const specialCount = prefix.length + suffix.length;
  const { maxTokens } = options;
  const contentLimit = maxTokens - specialCount;
  if (contentLimit < 1) throw new Error(`a window of ${maxTokens} tokens leaves no room for text beside ${specialCount} special tokens`);

  const declared = declaredPadding(document, config, idOf);
  const paddingSide = options.paddingSide ?? declared.side ?? "right";
  const padId = declared.padId ?? 0;
  let vocabSize = 0;
  for (const id of hf.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);

  const contentIds = (text: string): number[] => hf.encode(text, { add_special_tokens: false }).ids;

  /** Content ids of the whole text (`whole`), or of a part of it long enough for the window. */
  const windowContent = (text: string, truncate: TruncateMode): { content: number[]; whole: boolean } => {
    const wanted = contentLimit + CUT_MARGIN_TOKENS;
    for (let length = wanted * CHARS_PER_TOKEN_GUESS; length < text.length; length *= 2) {
      const content = contentIds(truncate === "start" ? suffixOf(text, length) : prefixOf(text, length));
      if (content.length >= wanted || length >= wanted * MAX_CHARS_PER_TOKEN) return { content, whole: false };
    }
    return { content: contentIds(text), whole: true };
  };

  const encode = (text: string, truncate: TruncateMode = "end"): Encoding => {
    const { content, whole } = windowContent(text, truncate);
    const fullLength = (whole ? content.length : Math.max(content.length, contentLimit + 1)) + specialCount;
    const truncated = truncate !== "none" && fullLength > maxTokens;
    const kept = !truncated ? content
      : truncate === "end" ? content.slice(0, contentLimit) : content.slice(Math.max(0, content.length - contentLimit));
    const ids = new Int32Array(kept.length + specialCount);
    ids.set(prefix, 0);
    ids.set(kept, prefix.length);
    ids.set(suffix, prefix.length + kept.length);
    return { ids, truncated, fullLength };
  };

  return {
    vocabSize,
    maxTokens,
    paddingSide,
    padId,
    modelType,
    encode: (text, encodeOptions) => encode(text, encodeOptions?.truncate),
    encodeBatch: (texts, encodeOptions) => texts.map((text) => encode(text, encodeOptions?.truncate)),
    pad: (encodings, alignment) => padEncodings(encodings, paddingSide, padId, alignment),
  };
}
