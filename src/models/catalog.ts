import type { Pooling } from "./manifest.js";

/**
 * A model the service knows before it is downloaded: what ListModels shows with status
 * `available`, and what DownloadModel fills in that a hub folder does not say (quality score,
 * licence, Matryoshka sizes, task presets).
 */
export interface CatalogEntry {
  /** Hub repository id, also the model id once downloaded. */
  id: string;
  name: string;
  dimensions: number;
  /** MTEB English average (v1 leaderboard, as published on the model card). */
  qualityScore: number;
  /** fp32 ONNX size, MB. */
  sizeMb: number;
  license: string;
  maxTokens: number;
  pooling: Exclude<Pooling, "none">;
  matryoshkaDimensions: number[];
  /** Instruction-tuned models whose task presets should be those of the model card. */
  taskPresets?: Record<string, string>;
}

/**
 * Known sentence-transformers models with ONNX weights on the public hub. Scores and sizes are
 * the model cards' figures; they describe the model, not this server's measurements.
 */
export const MODEL_CATALOG: readonly CatalogEntry[] = [
  {
    id: "sentence-transformers/all-MiniLM-L6-v2", name: "all-MiniLM-L6-v2", dimensions: 384, qualityScore: 56.26,
    sizeMb: 90, license: "apache-2.0", maxTokens: 256, pooling: "mean", matryoshkaDimensions: [],
  },
  {
    id: "BAAI/bge-small-en-v1.5", name: "bge-small-en-v1.5", dimensions: 384, qualityScore: 62.17,
    sizeMb: 133, license: "mit", maxTokens: 512, pooling: "cls", matryoshkaDimensions: [],
  },
  {
    id: "BAAI/bge-base-en-v1.5", name: "bge-base-en-v1.5", dimensions: 768, qualityScore: 63.55,
    sizeMb: 438, license: "mit", maxTokens: 512, pooling: "cls", matryoshkaDimensions: [],
  },
  {
    id: "intfloat/e5-small-v2", name: "e5-small-v2", dimensions: 384, qualityScore: 59.93,
    sizeMb: 133, license: "mit", maxTokens: 512, pooling: "mean", matryoshkaDimensions: [],
  },
  {
    id: "thenlper/gte-small", name: "gte-small", dimensions: 384, qualityScore: 61.36,
    sizeMb: 67, license: "mit", maxTokens: 512, pooling: "mean", matryoshkaDimensions: [],
  },
  {
    id: "nomic-ai/nomic-embed-text-v1.5", name: "nomic-embed-text-v1.5", dimensions: 768, qualityScore: 62.28,
    sizeMb: 547, license: "apache-2.0", maxTokens: 8192, pooling: "mean", matryoshkaDimensions: [512, 256, 128, 64],
  },
  {
    id: "mixedbread-ai/mxbai-embed-large-v1", name: "mxbai-embed-large-v1", dimensions: 1024, qualityScore: 64.68,
    sizeMb: 1340, license: "apache-2.0", maxTokens: 512, pooling: "cls", matryoshkaDimensions: [512, 256, 128, 64],
  },
  {
    id: "onnx-community/Qwen3-Embedding-0.6B-ONNX", name: "Qwen3-Embedding-0.6B", dimensions: 1024, qualityScore: 70.7,
    sizeMb: 2390, license: "apache-2.0", maxTokens: 32768, pooling: "last-token",
    matryoshkaDimensions: [768, 512, 256, 128, 64],
  },
];

/** The catalog entry of a model id, if known. */
export function catalogEntry(id: string): CatalogEntry | undefined {
  return MODEL_CATALOG.find((entry) => entry.id === id);
}
