import { endianness } from "node:os";
import type { EmbedResult } from "../../domain/types.js";
import type { EncodingFormat } from "./parse-openai-request.js";

/** An embeddings answer in OpenAI's shape. */
export interface OpenAiEmbeddingsResponse {
  object: "list";
  data: Array<{ object: "embedding"; index: number; embedding: number[] | string }>;
  /** The model that really ran (an alias such as `text-embedding-3-small` resolves to it). */
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

/**
 * Renders a pipeline result as OpenAI's embeddings response: `data` in input
 * order with `index`, each `embedding` a float array or, for `base64`, the
 * base64 of its little-endian float32 bytes (what the OpenAI SDKs decode).
 */
export function toOpenAiResponse(result: EmbedResult, format: EncodingFormat): OpenAiEmbeddingsResponse {
  return {
    object: "list",
    data: result.embeddings.map((embedding, index) => {
      const vector = embedding.float ?? new Float32Array(0);
      return { object: "embedding", index, embedding: format === "base64" ? float32Base64(vector) : Array.from(vector) };
    }),
    model: result.run.modelId,
    usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
  };
}

/** Base64 of a vector's little-endian float32 bytes, on hosts of either byte order. */
export function float32Base64(vector: Float32Array): string {
  if (endianness() === "LE") return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString("base64");
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((value, index) => bytes.writeFloatLE(value, index * 4));
  return bytes.toString("base64");
}
