import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { EmbedderError } from "../domain/errors.js";
import type { ModelDescription } from "../domain/types.js";
import { loadTokenizer, type Tokenizer } from "../tokenize/index.js";
import { MANIFEST_FILE, type ModelManifest } from "./manifest.js";
import { readVerifiedManifest } from "./verify-files.js";

/** Presets that name the default model and a precision policy rather than a model. */
export const PRESETS = ["efficient", "high-quality", "ultra-efficient", "custom"] as const;

/** A preset name. */
export type Preset = (typeof PRESETS)[number];

/** A model ready to serve: verified files, tokenizer loaded. */
export interface ServedModel {
  manifest: ModelManifest;
  dir: string;
  tokenizer: Tokenizer;
  sizeMb: number;
}

/** What a request's `model` field resolved to. */
export interface ModelChoice {
  model: ServedModel;
  preset: Preset;
}

/** Options of the registry. */
export interface ModelRegistryOptions {
  /** Folders scanned in order; the first holding an id wins (built-in first). */
  modelDirs: string[];
  defaultModelId: string;
  /** alias -> model id (e.g. OpenAI names to the default model). */
  aliases?: Record<string, string>;
}

/** Tracks the models on disk and loads them on first use. */
export interface ModelRegistry {
  /** Scans the folders and loads the default model; its failure is reported by `status`, not thrown. */
  start(): Promise<void>;
  /**
   * Resolves a request's `model` (preset, id or alias; "" = `efficient`) to a loaded
   * model. Throws UNKNOWN_MODEL for a name nothing matches, MODEL_NOT_READY when
   * the model's files fail to load (details name the file).
   */
  resolve(name: string): Promise<ModelChoice>;
  /** The default model once loaded. */
  defaultModel(): ServedModel | undefined;
  /** Every model found, with its status. */
  describe(): ModelDescription[];
  /** Ids of models that failed to load, with the reason. */
  failures(): Array<{ id: string; reason: string }>;
}

interface Entry {
  id: string;
  dir: string;
  manifest: ModelManifest;
  loaded?: Promise<ServedModel>;
  served?: ServedModel;
  failure?: string;
}

async function folderSizeMb(dir: string, manifest: ModelManifest): Promise<number> {
  let bytes = 0;
  for (const file of Object.keys(manifest.files)) bytes += (await stat(join(dir, file))).size;
  return bytes / (1024 * 1024);
}

async function scan(dirs: string[]): Promise<Map<string, Entry>> {
  const entries = new Map<string, Entry>();
  for (const root of dirs) {
    const children = await readdir(root, { withFileTypes: true }).catch(() => []);
    for (const child of children) {
      if (!child.isDirectory()) continue;
      const dir = join(root, child.name);
      const text = await readFile(join(dir, MANIFEST_FILE), "utf8").catch(() => undefined);
      if (text === undefined) continue;
      const manifest = JSON.parse(text) as ModelManifest;
      if (!entries.has(manifest.id)) entries.set(manifest.id, { id: manifest.id, dir, manifest });
    }
  }
  return entries;
}

/** Creates a registry over the given folders. */
export function createModelRegistry(options: ModelRegistryOptions): ModelRegistry {
  let entries = new Map<string, Entry>();
  const aliases = options.aliases ?? {};

  const load = (entry: Entry): Promise<ServedModel> => {
    entry.loaded ??= (async () => {
      try {
        const manifest = await readVerifiedManifest(entry.dir);
        const tokenizer = await loadTokenizer(join(entry.dir, manifest.tokenizer), {
          maxTokens: manifest.maxTokens,
          paddingSide: manifest.paddingSide,
        });
        const served = { manifest, dir: entry.dir, tokenizer, sizeMb: await folderSizeMb(entry.dir, manifest) };
        entry.served = served;
        entry.failure = undefined;
        return served;
      } catch (error) {
        const wrapped = error instanceof EmbedderError
          ? error
          : new EmbedderError("MODEL_NOT_READY", `model ${entry.id} failed to load`, { details: { model: entry.id }, cause: error });
        entry.failure = wrapped.message;
        entry.loaded = undefined;
        throw wrapped;
      }
    })();
    return entry.loaded;
  };

  const lookup = (name: string): { entry: Entry; preset: Preset } => {
    const preset = (PRESETS as readonly string[]).includes(name) ? (name as Preset) : name === "" ? "efficient" : undefined;
    const id = preset ? options.defaultModelId : aliases[name] ?? name;
    const entry = entries.get(id);
    if (!entry) {
      throw new EmbedderError("UNKNOWN_MODEL", `unknown model "${name}"`, {
        details: { model: name, available: [...entries.keys(), ...PRESETS] },
      });
    }
    return { entry, preset: preset ?? "efficient" };
  };

  return {
    async start() {
      entries = await scan(options.modelDirs);
      const entry = entries.get(options.defaultModelId);
      if (entry) await load(entry).catch(() => undefined);
    },
    async resolve(name) {
      const { entry, preset } = lookup(name);
      return { model: await load(entry), preset };
    },
    defaultModel: () => entries.get(options.defaultModelId)?.served,
    describe: () =>
      [...entries.values()].map((entry) => ({
        id: entry.id,
        name: entry.manifest.name,
        dimensions: entry.manifest.dimensions,
        qualityScore: entry.manifest.qualityScore ?? 0,
        sizeMb: entry.served?.sizeMb ?? 0,
        license: entry.manifest.license,
        status: entry.failure ? "failed" : entry.served ? "loaded" : "ready",
        statusReason: entry.failure ?? "",
        maxTokens: entry.manifest.maxTokens,
        matryoshkaDimensions: entry.manifest.matryoshkaDimensions,
        precisions: Object.keys(entry.manifest.variants),
        hardwareProfiles: [],
        pooling: entry.manifest.pooling,
        aliases: Object.entries(aliases).filter(([, id]) => id === entry.id).map(([alias]) => alias),
        source: entry.manifest.source,
      })),
    failures: () =>
      [...entries.values()].filter((entry) => entry.failure).map((entry) => ({ id: entry.id, reason: entry.failure ?? "" })),
  };
}
