/** File name of our model manifest inside a model folder. */
export const MANIFEST_FILE = "sutra-model.json";

/** Weight precisions a model folder can carry. */
export type Precision = "fp32" | "fp16" | "int8" | "int4";

/**
 * How token vectors become one text vector. `none`: the graph already outputs one
 * vector per text (the converted USE-Lite does pooling and L2 normalisation inside).
 */
export type Pooling = "none" | "mean" | "cls" | "last-token";

/** Result of a variant's quality gate against fp32 on the calibration set. */
export interface QualityGateResult {
  passed: boolean;
  minCosine: number;
  meanCosine: number;
  /** Threshold it was judged against (min cosine, and mean where one applies). */
  thresholdMin: number;
  thresholdMean?: number;
  calibrationTexts: number;
  reason?: string;
}

/** One weight-precision variant of a model. */
export interface ModelVariant {
  file: string;
  gate?: QualityGateResult;
}

/**
 * Our model manifest (`sutra-model.json`). Written by the converters and the
 * downloader; read by the registry. Every file of the folder has its sha256 in
 * `files`, so a missing or corrupted file is detected and named at load.
 */
export interface ModelManifest {
  id: string;
  name: string;
  dimensions: number;
  /** The model's token window; inputs are truncated to it. */
  maxTokens: number;
  pooling: Pooling;
  normalize: boolean;
  matryoshkaDimensions: number[];
  /** Named prompts prepended to inputs (sentence-transformers `prompts`). */
  prompts: Record<string, string>;
  license: string;
  source: string;
  /** MTEB average, when known. */
  qualityScore?: number;
  /** Graph input names, e.g. ["input_ids", "attention_mask"] (+ "position_ids", "token_type_ids"). */
  inputs: string[];
  /** Graph output name, e.g. "embeddings" or "last_hidden_state". */
  output: string;
  /** Tokenizer file name in the folder (Hugging Face tokenizer.json format). */
  tokenizer: string;
  /** Padding side the model expects (decoder models often use left). */
  paddingSide?: "left" | "right";
  variants: Partial<Record<Precision, ModelVariant>>;
  /** sha256 (hex) of every file in the folder except the manifest itself. */
  files: Record<string, string>;
  /**
   * Task presets a `prompt_name` may name (`general`, `reviews`, ...): task name -> instruction,
   * applied in the Qwen3 format. Absent: the registry's default presets (see `task-presets.ts`).
   */
  taskPresets?: Record<string, string>;
  /** Where the files came from when downloaded: the hub repository and the commit it resolved to. */
  hub?: { endpoint: string; repo: string; revision: string; commit: string };
  /** Folder layout the manifest describes: ours, or a Hugging Face sentence-transformers folder. */
  layout?: "sutra" | "sentence-transformers";
}
