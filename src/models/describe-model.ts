import type { HardwareProfileName, ModelDescription } from "../domain/types.js";
import { entryStatus, type ModelEntry } from "./model-entry.js";
import { downloadEtaSeconds } from "./model-downloads.js";
import type { ModelStore } from "./model-store.js";
import { DEFAULT_TASK_PRESETS } from "./task-presets.js";

/**
 * Largest fp32 model (MB) each tier is suggested for; ListModels' `hardware_profile` filter uses
 * it. Larger models still run anywhere they fit; this only says where they run comfortably.
 */
const TIER_SIZE_LIMIT_MB: ReadonlyArray<[HardwareProfileName[], number]> = [
  [["minimal"], 100],
  [["low"], 500],
  [["medium", "desktop"], 1500],
  [["high", "server"], 5000],
  [["extreme", "h100"], Infinity],
];

function profilesFor(sizeMb: number): HardwareProfileName[] {
  if (sizeMb <= 0) return [];
  return TIER_SIZE_LIMIT_MB.filter(([, limit]) => sizeMb <= limit).flatMap(([names]) => names);
}

/**
 * One model as ListModels shows it: the manifest's facts once the model is on disk, the
 * catalog's before, the entry's status and download progress, and the aliases naming it.
 * `store` gives the aliases and the sessions per model that turn `memoryMb` back into file size.
 */
export function describeModel(entry: ModelEntry, store: Pick<ModelStore, "aliases" | "sessionsPerModel">): ModelDescription {
  const manifest = entry.manifest;
  const catalog = entry.catalog;
  const job = entry.download;
  const progress = job && job.progress.bytesTotal > 0 ? job.progress.bytesDone / job.progress.bytesTotal : 0;
  const diskSizeMb = manifest ? entry.memoryMb / store.sessionsPerModel : catalog?.sizeMb ?? 0;
  return {
    id: entry.id,
    name: manifest?.name ?? catalog?.name ?? entry.id,
    dimensions: manifest?.dimensions ?? catalog?.dimensions ?? 0,
    qualityScore: manifest?.qualityScore ?? catalog?.qualityScore ?? 0,
    sizeMb: entry.served?.sizeMb ?? diskSizeMb,
    license: manifest?.license ?? catalog?.license ?? "unknown",
    status: entryStatus(entry),
    statusReason: job ? `downloading (${job.progress.phase})` : entry.failure ?? "",
    maxTokens: manifest?.maxTokens ?? catalog?.maxTokens ?? 0,
    matryoshkaDimensions: manifest?.matryoshkaDimensions ?? catalog?.matryoshkaDimensions ?? [],
    precisions: manifest ? Object.keys(manifest.variants) : [],
    hardwareProfiles: profilesFor(diskSizeMb),
    pooling: manifest?.pooling ?? catalog?.pooling ?? "",
    aliases: [...store.aliases].filter(([, id]) => id === entry.id).map(([alias]) => alias),
    source: manifest?.source ?? (catalog ? `hub ${catalog.id} (not downloaded)` : ""),
    downloadProgress: progress,
    downloadEtaSeconds: job ? downloadEtaSeconds(job) : 0,
    promptNames: manifest ? [...Object.keys(manifest.prompts), ...Object.keys(manifest.taskPresets ?? DEFAULT_TASK_PRESETS)] : [],
    revision: manifest?.hub?.commit ?? "",
  };
}
