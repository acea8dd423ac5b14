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
const SEQUENCE_PLACEHOLDER = "\u0000sutra:sequence\u0000";

/** A place where a text can be cut: a U+0020 space right after a non-space character. */
function isCut(text: string, index: number): boolean {
  return index > 0 && text.charCodeAt(index) === 0x20 && !/\s/.test(text[index - 1]);
}

/** The text up to the first cut at or after `length` characters, if there is one. */
function prefixOf(text: string, length: number): string | undefined {
  for (let index = text.indexOf(" ", length); index !== -1; index = text.indexOf(" ", index + 1)) {
    if (isCut(text, index)) return text.slice(0, index);
  }
  return undefined;
}

/** The text from the last cut at or before `text.length - length`, if there is one. */
function suffixOf(text: string, length: number): string | undefined {
  for (let index = text.lastIndexOf(" ", text.length - length); index > 0; index = text.lastIndexOf(" ", index - 1)) {
    if (isCut(text, index)) return text.slice(index);
  }
  return undefined;
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
 * tokens are always kept. For `end`/`start` on a long text only a part of it is tokenized: a
 * prefix (suffix) ending (starting) at a space after a non-space character, long enough for
 * the window plus a margin of tokens, which pre-tokenizers that split on whitespace
 * (BERT, byte-level, Metaspace) tokenize exactly as the whole text. `fullLength` is then
 * a lower bound. Padding: `paddingSide`, else what the documents declare, else right; pad id
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

  /** Content ids of the whole text, or of a part of it long enough for the window. */
  const windowContent = (text: string, truncate: TruncateMode): number[] => {
    if (truncate !== "none") {
      const wanted = contentLimit + CUT_MARGIN_TOKENS;
      for (let length = wanted * CHARS_PER_TOKEN_GUESS; length < text.length; length *= 2) {
        const part = truncate === "end" ? prefixOf(text, length) : suffixOf(text, length);
        if (part === undefined) break;
        const ids = contentIds(part);
        if (ids.length >= wanted) return ids;
      }
    }
    return contentIds(text);
  };

  const encode = (text: string, truncate: TruncateMode = "end"): Encoding => {
    const content = windowContent(text, truncate);
    const fullLength = content.length + specialCount;
    const truncated = truncate !== "none" && content.length > contentLimit;
    const kept = !truncated ? content
      : truncate === "end" ? content.slice(0, contentLimit) : content.slice(content.length - contentLimit);
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
    pad: (encodings) => padEncodings(encodings, paddingSide, padId),
  };
}
