import type { HubSettings } from "./hub/download-hub-model.js";
import type { ModelManifest } from "./manifest.js";

/** Hub settings plus who may be downloaded. */
export interface RegistryHubOptions extends HubSettings {
  /**
   * Model ids DownloadModel accepts (`org/name`, or `org/*` for an organisation); empty or
   * absent: any. Others get FORBIDDEN.
   */
  allowlist?: string[];
}

/**
 * Options of the model registry. One object serves every part of it (folder store, loaded
 * models, downloads), so a caller configures the registry in one place.
 */
export interface ModelRegistryOptions {
  /** Folders scanned in order; the first holding an id wins (built-in first). */
  modelDirs: string[];
  /** Where downloads are installed; default the last of `modelDirs`. */
  downloadDir?: string;
  defaultModelId: string;
  /** Model the `high-quality` preset runs; absent = the default model. */
  highQualityModelId?: string;
  /** alias -> model id (e.g. OpenAI names to the default model); only own keys count. */
  aliases?: Readonly<Record<string, string>>;
  /**
   * Most memory the loaded models other than the default may take, in MB (0 or absent:
   * unlimited). A model's share is its fp32 ONNX file size times `sessionsPerModel`; when a
   * load goes over, the least recently used models nobody is using are unloaded.
   */
  memoryBudgetMb?: number;
  /** Sessions a loaded model opens (one per inference worker). Default 1. */
  sessionsPerModel?: number;
  /** Closes the workers' sessions of an unloaded model. */
  releaseModel?: (dir: string) => void;
  hub?: RegistryHubOptions;
  /** Builds precision variants in a downloaded folder before it is installed; returns the manifest to write. */
  prepareDownload?: (dir: string, manifest: ModelManifest) => Promise<ModelManifest>;
  /** Runs once a downloaded model is installed and loaded (e.g. one embedding to open the sessions). */
  warmup?: (modelId: string) => Promise<void>;
  /** Least time between two rescans triggered by unknown model names; default 2 s. */
  rescanIntervalMs?: number;
  /** Told about loads, unloads and download outcomes. */
  onEvent?: (event: { kind: "loaded" | "unloaded" | "downloaded" | "failed"; modelId: string; reason?: string }) => void;
}
