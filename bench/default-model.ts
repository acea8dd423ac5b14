import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { EngineConfig } from "../src/domain/types.js";
import { resolveHardwareProfile, type HardwareProfile } from "../src/inference/hardware-profile.js";
import { BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID } from "../src/models/builtin.js";
import { MANIFEST_FILE, type ModelManifest, type Precision } from "../src/models/manifest.js";
import { selectVariant } from "../src/models/select-variant.js";
import { loadTokenizer, type Tokenizer } from "../src/tokenize/index.js";

/** The built default model as the benchmarks use it. */
export interface BenchModel {
  dir: string;
  manifest: ModelManifest;
  tokenizerFile: string;
  tokenizer: Tokenizer;
  /** The hardware profile `sutra serve` resolves on this host by default (`auto`). */
  profile: HardwareProfile;
  /**
   * The precision a default request runs at: the service's own variant choice
   * (`efficient` preset, no config, the default profile's policy) over the
   * manifest's variants, so it follows the manifest (int8 once that variant exists).
   */
  precision: Precision;
  /** The ONNX file of that precision. */
  modelFile: string;
}

/** Loads the built default model's manifest and tokenizer and resolves the default precision. */
export async function loadBenchModel(): Promise<BenchModel> {
  const dir = join(BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID);
  const manifest = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), "utf8")) as ModelManifest;
  const tokenizerFile = join(dir, manifest.tokenizer);
  const tokenizer = await loadTokenizer(tokenizerFile, { maxTokens: manifest.maxTokens });
  const profile = resolveHardwareProfile("auto", { cuda: false, cudaAvailable: false });
  const noConfig: EngineConfig = {};
  const variant = selectVariant(manifest, "efficient", noConfig, profile.precision);
  return { dir, manifest, tokenizerFile, tokenizer, profile, precision: variant.precision, modelFile: join(dir, variant.file) };
}
