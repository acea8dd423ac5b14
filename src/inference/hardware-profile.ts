import { availableParallelism, totalmem } from "node:os";
import type { HardwareProfileName } from "../domain/types.js";
import type { PrecisionPolicy } from "../models/select-variant.js";

/** Tiers of the hardware table (docs/HARDWARE.md); seed aliases map onto them. */
export type Tier = "minimal" | "low" | "medium" | "high" | "extreme";

/** What a profile fixes for the engine. */
export interface HardwareProfile {
  tier: Tier;
  name: HardwareProfileName;
  workers: number;
  intraOpThreads: number;
  tokenBudget: number;
  maxBatchSize: number;
  executionProviders: string[];
  precision: PrecisionPolicy;
}

const ALIASES: Record<string, Tier> = { desktop: "medium", server: "high", h100: "extreme" };

const CPU_PRECISION: PrecisionPolicy = { preferred: "int8", highQuality: "fp32", fastestFirst: ["int8", "int4", "fp16", "fp32"] };
const CUDA_PRECISION: PrecisionPolicy = { preferred: "fp16", highQuality: "fp16", fastestFirst: ["fp16", "int8", "int4", "fp32"] };

function detectTier(cores: number, memoryGb: number): Tier {
  if (cores <= 1 || memoryGb < 2) return "minimal";
  if (cores <= 2) return "low";
  if (cores <= 8) return "medium";
  if (cores <= 32) return "high";
  return "extreme";
}

/**
 * Resolves a profile name (`auto` detects from cores and memory) to engine
 * settings. `cuda` true adds the CUDA execution provider (workers fall back to
 * CPU when its library is missing) and prefers fp16 weights.
 */
export function resolveHardwareProfile(name: HardwareProfileName, options: { cuda: boolean }): HardwareProfile {
  const cores = availableParallelism();
  const tier: Tier = name === "auto" ? detectTier(cores, totalmem() / 2 ** 30) : ALIASES[name] ?? (name as Tier);
  const workers = tier === "minimal" ? 1 : Math.max(1, Math.min(cores, tier === "low" ? 2 : Math.ceil(cores / 2)));
  const intraOpThreads = Math.max(1, Math.floor(cores / workers));
  const tokenBudget = { minimal: 2048, low: 8192, medium: 16384, high: 32768, extreme: 65536 }[tier];
  return {
    tier,
    name,
    workers,
    intraOpThreads,
    tokenBudget,
    maxBatchSize: tier === "minimal" ? 16 : 64,
    executionProviders: options.cuda ? ["cuda", "cpu"] : ["cpu"],
    precision: options.cuda ? CUDA_PRECISION : CPU_PRECISION,
  };
}
