import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { EmbedderError } from "../domain/errors.js";
import { loadTokenizer } from "../tokenize/index.js";
import { describeSentenceTransformersFolder } from "./hf-folder.js";
import { MANIFEST_FILE, type ModelManifest } from "./manifest.js";
import { notReadyError, type ModelEntry, type ServedModel } from "./model-entry.js";
import type { ModelRegistryOptions } from "./model-registry-options.js";
import { fileSizeMb } from "./model-store.js";
import { readVerifiedManifest } from "./verify-files.js";

async function folderSizeMb(dir: string, manifest: ModelManifest): Promise<number> {
  const files = Object.keys(manifest.files).length > 0
    ? Object.keys(manifest.files)
    : Object.values(manifest.variants).map((variant) => variant.file);
  let total = 0;
  for (const file of files) total += await fileSizeMb(join(dir, file));
  return total;
}

/** A loaded model held for one request; `release` (idempotent) lets the memory budget unload it again. */
export interface HeldModel {
  model: ServedModel;
  release: () => void;
}

/**
 * The models in memory: loads them on first use, counts the requests holding each, and keeps the
 * models other than the default within `memoryBudgetMb` by unloading the least recently used
 * ones nobody holds.
 */
export interface LoadedModels {
  /**
   * Loads `entry` once (concurrent callers share the load): verifies its files and loads its
   * tokenizer. A failure is recorded on the entry and thrown as MODEL_NOT_READY naming the cause.
   */
  load(entry: ModelEntry): Promise<ServedModel>;
  /**
   * Loads `entry` and holds it until `release`: MODEL_NOT_READY while it is not on disk or still
   * downloading (a model in its warmup may be held), or when it fails to load.
   */
  hold(entry: ModelEntry): Promise<HeldModel>;
}

/** Creates the loaded-model set over the store's `entries`. */
export function createLoadedModels(options: ModelRegistryOptions, entries: ReadonlyMap<string, ModelEntry>): LoadedModels {
  let clock = 0;

  const unload = (entry: ModelEntry): void => {
    if (!entry.served || !entry.dir) return;
    entry.served = undefined;
    entry.loaded = undefined;
    options.releaseModel?.(entry.dir);
    options.onEvent?.({ kind: "unloaded", modelId: entry.id });
  };

  /** Unloads least recently used models nobody holds until the loaded ones fit the budget. */
  const enforceBudget = (keep: ModelEntry): void => {
    const budget = options.memoryBudgetMb ?? 0;
    if (budget <= 0) return;
    const loaded = () => [...entries.values()].filter((entry) => entry.served && entry.id !== options.defaultModelId);
    let used = loaded().reduce((sum, entry) => sum + entry.memoryMb, 0);
    const candidates = loaded().filter((entry) => entry !== keep && entry.leases === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const entry of candidates) {
      if (used <= budget) break;
      used -= entry.memoryMb;
      unload(entry);
    }
  };

  const load = (entry: ModelEntry): Promise<ServedModel> => {
    const dir = entry.dir;
    const known = entry.manifest;
    if (!dir || !known) return Promise.reject(notReadyError(entry));
    entry.loaded ??= (async () => {
      try {
        const onDisk = await readFile(join(dir, MANIFEST_FILE), "utf8").then(() => true, () => false);
        const manifest = onDisk ? await readVerifiedManifest(dir) : await describeSentenceTransformersFolder(dir, { id: known.id });
        const tokenizer = await loadTokenizer(join(dir, manifest.tokenizer), {
          maxTokens: manifest.maxTokens,
          paddingSide: manifest.paddingSide,
        });
        const served = { manifest, dir, tokenizer, sizeMb: await folderSizeMb(dir, manifest) };
        entry.manifest = manifest;
        entry.served = served;
        entry.failure = undefined;
        entry.lastUsed = ++clock;
        options.onEvent?.({ kind: "loaded", modelId: entry.id });
        enforceBudget(entry);
        return served;
      } catch (error) {
        const wrapped = error instanceof EmbedderError
          ? error
          : new EmbedderError("MODEL_NOT_READY", `model ${entry.id} failed to load: ${(error as Error).message}`, { details: { model: entry.id }, cause: error });
        entry.failure = wrapped.message;
        entry.loaded = undefined;
        throw wrapped;
      }
    })();
    return entry.loaded;
  };

  return {
    load,
    async hold(entry) {
      if ((entry.download && entry.download.progress.phase !== "warmup") || !entry.manifest) throw notReadyError(entry);
      entry.leases++;
      try {
        const model = await load(entry);
        entry.lastUsed = ++clock;
        let released = false;
        return {
          model,
          release: () => {
            if (released) return;
            released = true;
            entry.leases--;
            if (entry.leases === 0) enforceBudget(entry);
          },
        };
      } catch (error) {
        entry.leases--;
        throw error;
      }
    },
  };
}
