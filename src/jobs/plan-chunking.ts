import { EmbedderError } from "../domain/errors.js";
import type { ChunkingOptions, JobEmbeddingOptions } from "../domain/jobs.js";
import type { ServedModel } from "../models/registry.js";
import { prepareTexts } from "../engine/prepare-texts.js";
import type { ChunkMeasure } from "./chunk-document.js";

/** Fewest content tokens a chunk may hold: one character of any tokenizer (a byte-level BPE spends up to 4 on it). */
export const MIN_CHUNK_CONTENT_TOKENS = 4;

/** The chunking of a job on its model: limits in force and how to measure text. */
export interface ChunkingPlan {
  chunking: ChunkingOptions;
  measure: ChunkMeasure;
  /** Tokens the instruction or prompt adds to every chunk. */
  promptTokens: number;
  /** Most tokens the model sees for one chunk (chunk and prompt): sizes a job's inference groups. */
  maxEmbeddedTokens: number;
}

/**
 * Settles a job's chunking on its model and checks it: `chunk_size` counts
 * the tokens of a chunk alone (special tokens included) and must leave room
 * for the instruction or prompt in the model's window (0 = all that room);
 * `chunk_overlap` must be smaller than a chunk's content. A bad value is
 * INVALID_ARGUMENT with details naming the field, the value and the bound (and
 * the model's window and prompt tokens behind it); an unknown prompt name, or
 * both an instruction and a prompt name, is INVALID_ARGUMENT as for a request.
 */
export function planChunking(model: ServedModel, options: Pick<JobEmbeddingOptions, "promptName" | "instruction">, requested: ChunkingOptions): ChunkingPlan {
  const { manifest, tokenizer } = model;
  const countTokens = (text: string): number => tokenizer.encode(text, { truncate: "none" }).ids.length;
  const prompted = Boolean(options.promptName || options.instruction);
  prepareTexts(["x"], manifest, options.promptName, options.instruction);
  const countEmbedded = prompted
    ? (text: string): number => countTokens(prepareTexts([text], manifest, options.promptName, options.instruction)[0])
    : countTokens;
  const specialTokens = countTokens("");
  const maxTokens = Math.min(manifest.maxTokens, tokenizer.maxTokens);
  const promptTokens = Math.max(0, countEmbedded("x") - countTokens("x"));
  const largest = maxTokens - promptTokens;
  const smallest = specialTokens + MIN_CHUNK_CONTENT_TOKENS;
  const base = { model_max_tokens: maxTokens, prompt_tokens: promptTokens };
  if (largest < smallest) {
    throw new EmbedderError("INVALID_ARGUMENT", `the instruction or prompt takes ${promptTokens} of the model's ${maxTokens} tokens, leaving no room for chunks`, {
      details: { field: prompted && options.instruction ? "instruction" : "prompt_name", ...base },
    });
  }
  const chunkSize = requested.chunkSize === 0 ? largest : requested.chunkSize;
  if (chunkSize > largest || chunkSize < smallest) {
    const why = chunkSize > largest
      ? `is larger than the ${largest} tokens the model takes besides the prompt (window ${maxTokens}, prompt ${promptTokens})`
      : `is smaller than ${smallest} tokens (${specialTokens} special tokens and ${MIN_CHUNK_CONTENT_TOKENS} of text)`;
    throw new EmbedderError("INVALID_ARGUMENT", `chunking.chunk_size ${chunkSize} ${why}`, {
      details: { field: "chunking.chunk_size", value: chunkSize, min: smallest, max: largest, ...base },
    });
  }
  const overlapLimit = chunkSize - specialTokens - 1;
  if (requested.chunkOverlap > overlapLimit) {
    throw new EmbedderError("INVALID_ARGUMENT", `chunking.chunk_overlap ${requested.chunkOverlap} must be smaller than a chunk's ${chunkSize - specialTokens} tokens of text`, {
      details: { field: "chunking.chunk_overlap", value: requested.chunkOverlap, max: overlapLimit, chunk_size: chunkSize },
    });
  }
  return {
    chunking: { chunkSize, chunkOverlap: requested.chunkOverlap },
    measure: { countTokens, countEmbedded, specialTokens, maxTokens },
    promptTokens,
    maxEmbeddedTokens: Math.min(maxTokens, chunkSize + promptTokens),
  };
}
