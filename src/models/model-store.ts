import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { EmbedderError } from "../domain/errors.js";
import { MODEL_CATALOG, catalogEntry } from "./catalog.js";
import { describeSentenceTransformersFolder, isSentenceTransformersFolder } from "./hf-folder.js";
import { MANIFEST_FILE, type ModelManifest } from "./manifest.js";
import type { ModelEntry } from "./model-entry.js";
import type { ModelRegistryOptions } from "./model-registry-options.js";

/** Presets that name a model (the default one; `high-quality`: SUTRA_HIGH_QUALITY_MODEL when set) and a precision policy. */
export const PRESETS = ["efficient", "high-quality", "ultra-efficient", "custom"] as const;

/** A preset name. */
export type Preset = (typeof PRESETS)[number];

/** Least time between two rescans of the model folders triggered by unknown names. */
const RESCAN_INTERVAL_MS = 2_000;

/** Size of a file in MB; 0 when it cannot be read, so a missing file never fails a scan or a load. */
export async function fileSizeMb(path: string): Promise<number> {
  return stat(path).then((info) => info.size / (1024 * 1024), () => 0);
}

async function readManifest(dir: string): Promise<ModelManifest | undefined> {
  const text = await readFile(join(dir, MANIFEST_FILE), "utf8").catch(() => undefined);
  if (text !== undefined) return JSON.parse(text) as ModelManifest;
  if (await isSentenceTransformersFolder(dir)) return describeSentenceTransformersFolder(dir);
  return undefined;
}

/**
 * The models the registry knows: one entry per id found in the model folders or the catalog,
 * and how request names (presets, ids, aliases) map onto them.
 */
export interface ModelStore {
  /** Every known entry by model id. */
  readonly entries: ReadonlyMap<string, ModelEntry>;
  /** alias -> model id; a Map, so client words such as `constructor` are just unknown names. */
  readonly aliases: ReadonlyMap<string, string>;
  /** Sessions a loaded model opens, at least 1: an entry's `memoryMb` is its fp32 file size times this. */
  readonly sessionsPerModel: number;
  /** The entry of `id`, created (with its catalog entry, if any) when new. */
  entryFor(id: string): ModelEntry;
  /** Records a model folder on `entry`: its folder, manifest and memory estimate. */
  install(entry: ModelEntry, dir: string, manifest: ModelManifest): Promise<void>;
  /** Reads model folders not seen yet and adds the catalog's models. */
  scan(): Promise<void>;
  /** Resolves a preset, id or alias ("" = `efficient`); UNKNOWN_MODEL when nothing matches. */
  lookup(name: string): { entry: ModelEntry; preset: Preset };
  /**
   * {@link ModelStore.lookup}, but a name nothing matches triggers one rescan of the folders (at
   * most one per `rescanIntervalMs`), so a model folder copied in while the server runs is found
   * on its first request without a restart.
   */
  lookupOrRescan(name: string): Promise<{ entry: ModelEntry; preset: Preset }>;
  /** Whether `name` names an installed model; synchronous and without rescanning, for routing. */
  knows(name: string): boolean;
  /** Folders that cannot be served, then the default model's load failure if any. */
  failures(): Array<{ id: string; reason: string }>;
}

/** Creates the store over `options.modelDirs` and the catalog; nothing is read before `scan`. */
export function createModelStore(options: ModelRegistryOptions): ModelStore {
  const entries = new Map<string, ModelEntry>();
  const aliases = new Map(Object.entries(options.aliases ?? {}));
  const sessionsPerModel = Math.max(1, options.sessionsPerModel ?? 1);
  /** Folders that failed to scan (bad manifest, unsupported layout), by folder name. */
  const scanFailures: Array<{ id: string; reason: string }> = [];
  /** Folders already read (rescans read only new ones). */
  const seenDirs = new Set<string>();
  let lastScan = 0;

  const entryFor = (id: string): ModelEntry => {
    let entry = entries.get(id);
    if (!entry) {
      entry = { id, leases: 0, lastUsed: 0, memoryMb: 0, catalog: catalogEntry(id) };
      entries.set(id, entry);
    }
    return entry;
  };

  const install = async (entry: ModelEntry, dir: string, manifest: ModelManifest): Promise<void> => {
    entry.dir = dir;
    entry.manifest = manifest;
    entry.memoryMb = (await fileSizeMb(join(dir, manifest.variants.fp32?.file ?? "model.onnx"))) * sessionsPerModel;
  };

  const addFolder = async (dir: string, folderName: string): Promise<void> => {
    if (seenDirs.has(dir)) return;
    try {
      const manifest = await readManifest(dir);
      if (!manifest) return;
      seenDirs.add(dir);
      const entry = entryFor(manifest.id);
      if (entry.dir && (entry.dir !== dir || entry.manifest)) return;
      await install(entry, dir, manifest);
    } catch (error) {
      seenDirs.add(dir);
      if (scanFailures.some((failure) => failure.id === folderName)) return;
      scanFailures.push({ id: folderName, reason: `folder ${folderName} cannot be served: ${(error as Error).message}` });
    }
  };

  const scan = async (): Promise<void> => {
    lastScan = Date.now();
    for (const root of options.modelDirs) {
      const children = await readdir(root, { withFileTypes: true }).catch(() => []);
      for (const child of children) {
        if (!child.isDirectory() || child.name.startsWith(".")) continue;
        await addFolder(join(root, child.name), child.name);
      }
    }
    for (const known of MODEL_CATALOG) entryFor(known.id);
  };

  const lookup = (name: string): { entry: ModelEntry; preset: Preset } => {
    const preset = (PRESETS as readonly string[]).includes(name) ? (name as Preset) : name === "" ? "efficient" : undefined;
    const presetModel = preset === "high-quality" ? options.highQualityModelId ?? options.defaultModelId : options.defaultModelId;
    const id = preset ? presetModel : aliases.get(name) ?? name;
    const entry = entries.get(id);
    if (!entry) {
      throw new EmbedderError("UNKNOWN_MODEL", `unknown model "${name}"`, {
        details: { model: name, available: [...[...entries.values()].filter((candidate) => candidate.manifest).map((candidate) => candidate.id), ...PRESETS] },
      });
    }
    return { entry, preset: preset ?? "efficient" };
  };

  return {
    entries,
    aliases,
    sessionsPerModel,
    entryFor,
    install,
    scan,
    lookup,
    async lookupOrRescan(name) {
      try {
        return lookup(name);
      } catch (error) {
        if (Date.now() - lastScan < (options.rescanIntervalMs ?? RESCAN_INTERVAL_MS)) throw error;
        await scan();
        return lookup(name);
      }
    },
    knows(name) {
      try {
        return lookup(name).entry.manifest !== undefined;
      } catch {
        return false;
      }
    },
    failures() {
      const failure = entries.get(options.defaultModelId)?.failure;
      return failure === undefined ? [...scanFailures] : [...scanFailures, { id: options.defaultModelId, reason: failure }];
    },
  };
}
