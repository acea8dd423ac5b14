import type { EngineConfig } from "../domain/types.js";
import type { ModelManifest, Precision } from "./manifest.js";
import type { Preset } from "./registry.js";

/** The variant a request runs on, and whether its output is packed binary by policy. */
export interface VariantChoice {
  precision: Precision;
  file: string;
  /** True when the preset or config asked for the seed's binary mode. */
  binaryOutput: boolean;
}

/** Precision preferences of the hardware profile in use. */
export interface PrecisionPolicy {
  /** Preferred precision of the `efficient` preset (CPU: int8; CUDA: fp16). */
  preferred: Precision;
  /** Precision of the `high-quality` preset (CPU: fp32; CUDA: fp16). */
  highQuality: Precision;
  /** Variants from fastest to slowest on this hardware. */
  fastestFirst: Precision[];
}

const usable = (manifest: ModelManifest, precision: Precision): boolean => {
  const variant = manifest.variants[precision];
  return variant !== undefined && (variant.gate === undefined || variant.gate.passed);
};

/**
 * Picks the weight variant: explicit `config` fields first (quantization, then
 * use_fp16), then the preset, then the profile's preference. A precision the
 * model lacks (or whose quality gate failed) falls back along the profile's
 * order toward fp32; the caller reports what actually ran.
 */
export function selectVariant(manifest: ModelManifest, preset: Preset, config: EngineConfig, policy: PrecisionPolicy): VariantChoice {
  const binaryOutput = preset === "ultra-efficient" || config.quantization === "binary" || config.binaryQuantization === true;
  let wanted: Precision;
  if (config.quantization === "none") wanted = "fp32";
  else if (config.quantization === "int8" || config.quantization === "int4") wanted = config.quantization;
  else if (config.quantization === "binary") wanted = policy.fastestFirst.find((precision) => usable(manifest, precision)) ?? "fp32";
  else if (config.useFp16 === true) wanted = "fp16";
  else if (preset === "high-quality") wanted = policy.highQuality;
  else if (preset === "ultra-efficient") wanted = policy.fastestFirst.find((precision) => usable(manifest, precision)) ?? "fp32";
  else wanted = policy.preferred;
  const order = [wanted, ...policy.fastestFirst.slice(policy.fastestFirst.indexOf(wanted) + 1), "fp32" as const];
  const precision = order.find((candidate) => usable(manifest, candidate)) ?? "fp32";
  const file = manifest.variants[precision]?.file ?? manifest.variants.fp32?.file ?? "model.onnx";
  return { precision, file, binaryOutput };
}
