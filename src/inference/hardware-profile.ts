import { availableParallelism, totalmem } from "node:os";
import { EmbedderError } from "../domain/errors.js";
import type { HardwareProfileName, ServingSettings } from "../domain/types.js";
import type { PrecisionPolicy } from "../models/select-variant.js";

/** Tiers of the hardware table (docs/HARDWARE.md); seed aliases map onto them. */
export type Tier = ServingSettings["tier"];

/** Engine settings an operator may set over the tier's (`sutra serve --workers` and the like). */
export type EngineSettingOverrides = Partial<Pick<HardwareProfile, "workers" | "intraOpThreads" | "tokenBudget" | "maxBatchSize">>;

/** What a profile fixes for the engine. */
export interface HardwareProfile {
  tier: Tier;
  name: HardwareProfileName;
  workers: number;
  intraOpThreads: number;
  tokenBudget: number;
  maxBatchSize: number;
  /** True when the profile asks for the CUDA execution provider. */
  wantsCuda: boolean;
  /** Execution providers sessions use: ["cuda", "cpu"] only when CUDA is wanted and available. */
  executionProviders: string[];
  precision: PrecisionPolicy;
}

/** The tier of every profile name but `auto` (a Map: names arrive from requests). */
const TIER_OF_NAME: ReadonlyMap<string, Tier> = new Map<string, Tier>([
  ["minimal", "minimal"], ["low", "low"], ["medium", "medium"], ["high", "high"], ["extreme", "extreme"],
  ["desktop", "medium"], ["server", "high"], ["h100", "extreme"],
]);

/** CPU: int8 weights first (VNNI/AVX2 integer GEMM), fp32 for high quality. */
export const CPU_PRECISION: PrecisionPolicy = { preferred: "int8", highQuality: "fp32", fastestFirst: ["int8", "int4", "fp16", "fp32"] };
/** CUDA: fp16 weights and compute. */
export const CUDA_PRECISION: PrecisionPolicy = { preferred: "fp16", highQuality: "fp16", fastestFirst: ["fp16", "int8", "int4", "fp32"] };

const TOKEN_BUDGET: Readonly<Record<Tier, number>> = { minimal: 2048, low: 8192, medium: 16384, high: 32768, extreme: 65536 };

/** The tier `auto` picks from core count and memory. */
export function detectTier(cores: number, memoryGb: number): Tier {
  if (cores <= 1 || memoryGb < 2) return "minimal";
  if (cores <= 2) return "low";
  if (cores <= 8) return "medium";
  if (cores <= 32) return "high";
  return "extreme";
}

/** The tier a profile name stands for (`auto` detects it from this host); INVALID_ARGUMENT for a name no tier has. */
export function tierOf(name: HardwareProfileName): Tier {
  if (name === "auto") return detectTier(availableParallelism(), totalmem() / 2 ** 30);
  const tier = TIER_OF_NAME.get(name);
  if (tier === undefined) {
    throw new EmbedderError("INVALID_ARGUMENT", `unknown hardware profile "${name}"`, {
      details: { field: "hardware_profile", supported: ["auto", ...TIER_OF_NAME.keys()] },
    });
  }
  return tier;
}

/**
 * Resolves a profile name to engine settings. The `extreme` tier (and `h100`)
 * and the `--cuda` flag ask for CUDA; when `cudaAvailable` is false the profile
 * runs on CPU with the CPU precision policy. A server configured this way logs
 * the fallback and reports health degraded; a request that asks for such a
 * tier runs on CPU and only its own answer says so. Worker and thread counts
 * fit this host's cores unless `overrides` (the operator's settings, each
 * taken as given) set them.
 */
export function resolveHardwareProfile(
  name: HardwareProfileName,
  options: { cuda: boolean; cudaAvailable: boolean; overrides?: EngineSettingOverrides },
): HardwareProfile {
  const cores = availableParallelism();
  const tier = tierOf(name);
  const wantsCuda = options.cuda || tier === "extreme";
  const onCuda = wantsCuda && options.cudaAvailable;
  const overrides = options.overrides ?? {};
  const workers = overrides.workers ?? (tier === "minimal" ? 1 : Math.max(1, Math.min(cores, tier === "low" ? 2 : Math.ceil(cores / 2))));
  return {
    tier,
    name,
    workers,
    intraOpThreads: overrides.intraOpThreads ?? Math.max(1, Math.floor(cores / workers)),
    tokenBudget: overrides.tokenBudget ?? TOKEN_BUDGET[tier],
    maxBatchSize: overrides.maxBatchSize ?? (tier === "minimal" ? 16 : 64),
    wantsCuda,
    executionProviders: onCuda ? ["cuda", "cpu"] : ["cpu"],
    precision: onCuda ? CUDA_PRECISION : CPU_PRECISION,
  };
}

/** What health, ListModels and the start-up log report of `profile`, with the queue bound in texts. */
export function servingSettings(profile: HardwareProfile, maxQueue: number): ServingSettings {
  return {
    tier: profile.tier,
    executionProvider: profile.executionProviders[0],
    workers: profile.workers,
    intraOpThreads: profile.intraOpThreads,
    tokenBudget: profile.tokenBudget,
    maxBatchSize: profile.maxBatchSize,
    maxQueue,
  };
}

/** The profile an answer names: the one asked for, or under `auto` the tier detected on this host. */
export function answeredProfileName(profile: Pick<HardwareProfile, "name" | "tier">): HardwareProfileName {
  return profile.name === "auto" ? profile.tier : profile.name;
}
