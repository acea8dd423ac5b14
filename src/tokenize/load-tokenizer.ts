import { readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createHuggingFaceTokenizer, HUGGING_FACE_MODEL_TYPES } from "./hugging-face-tokenizer.js";
import type { LoadTokenizerOptions, Tokenizer } from "./tokenizer.js";
import { createUseLiteUnigramTokenizer } from "./use-lite-unigram.js";
import { USE_LITE_MODEL_TYPE } from "./use-lite-vocab.js";

async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  const parsed: unknown = JSON.parse(await readFile(file, "utf8"));
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error(`${file} is not a JSON object`);
  return parsed as Record<string, unknown>;
}

async function readOptionalJsonObject(file: string): Promise<Record<string, unknown>> {
  try {
    return await readJsonObject(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw error;
  }
}

/**
 * Loads the tokenizer of a model from a Hugging Face `tokenizer.json`: `path` is that file or
 * the model folder holding it (a `tokenizer_config.json` beside it is read when present).
 * Dispatches on the document's model type: `UseLiteUnigram` (the embedded default, see
 * `buildUseLiteTokenizerJson`) gets our reference-exact Viterbi; `WordPiece`, `BPE` and
 * `Unigram` go through `@huggingface/tokenizers`. All share the {@link Tokenizer} interface.
 * Rejects on a missing or malformed file, an unsupported model type, or a `maxTokens` that
 * is not a positive integer.
 */
export async function loadTokenizer(path: string, options: LoadTokenizerOptions): Promise<Tokenizer> {
  if (!Number.isInteger(options.maxTokens) || options.maxTokens < 1) {
    throw new Error(`maxTokens must be a positive integer, got ${options.maxTokens}`);
  }
  const file = (await stat(path)).isDirectory() ? join(path, "tokenizer.json") : path;
  const document = await readJsonObject(file);
  const modelType = (document.model as { type?: unknown } | undefined)?.type;
  if (modelType === USE_LITE_MODEL_TYPE) {
    return createUseLiteUnigramTokenizer(document, { maxTokens: options.maxTokens, paddingSide: options.paddingSide ?? "right" });
  }
  if (HUGGING_FACE_MODEL_TYPES.some((type) => type === modelType)) {
    const config = await readOptionalJsonObject(join(dirname(file), "tokenizer_config.json"));
    return createHuggingFaceTokenizer(document, config, options);
  }
  throw new Error(`${file}: unsupported tokenizer model type ${JSON.stringify(modelType)}`);
}
