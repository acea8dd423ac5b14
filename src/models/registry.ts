import type { ModelDescription, ModelDownloadStatus } from "../domain/types.js";
import { describeModel } from "./describe-model.js";
import { createLoadedModels } from "./loaded-models.js";
import type { ServedModel } from "./model-entry.js";
import { createModelDownloads } from "./model-downloads.js";
import type { ModelRegistryOptions } from "./model-registry-options.js";
import { createModelStore, type Preset } from "./model-store.js";

export type { ServedModel } from "./model-entry.js";
export type { ModelRegistryOptions, RegistryHubOptions } from "./model-registry-options.js";
export { PRESETS, type Preset } from "./model-store.js";

/**
 * What a request's `model` field resolved to. The model stays loaded (the memory budget
 * will not unload it) until `release` is called; call it once the request is done.
 */
export interface ModelChoice {
  model: ServedModel;
  preset: Preset;
  release?: () => void;
}

/** Where a download stands, as DownloadModel answers. */
export type DownloadStatus = ModelDownloadStatus;

/** Tracks the models on disk and in the catalog, loads them on first use, downloads them. */
export interface ModelRegistry {
  /** Scans the folders and loads the default model; its failure is reported by `status`, not thrown. */
  start(): Promise<void>;
  /**
   * Resolves a request's `model` (preset, id or alias; "" = `efficient`) to a loaded
   * model. Throws UNKNOWN_MODEL for a name nothing matches, MODEL_NOT_READY when the model
   * is not on disk yet (catalog only, downloading, download failed: details say which) or its
   * files fail to load (details name the file).
   */
  resolve(name: string): Promise<ModelChoice>;
  /** The default model once loaded. */
  defaultModel(): ServedModel | undefined;
  /** Every model found or known, with its status. */
  describe(): ModelDescription[];
  /** One model by id or alias; UNKNOWN_MODEL when nothing matches. */
  describeOne(name: string): Promise<ModelDescription>;
  /**
   * Whether `name` (preset, id or alias) names a model this server can serve locally now
   * (installed, not merely in the catalog); synchronous and without rescanning, for routing.
   */
  knows(name: string): boolean;
  /**
   * What is wrong with what this server was configured to serve, with the reason: model folders
   * that cannot be served and the default model when it fails to load. A model that failed to
   * download, or to load on demand, is not listed: that is its own status (`describe`,
   * `describeOne`, `download` answer `failed` with the reason), not the service's health.
   */
  failures(): Array<{ id: string; reason: string }>;
  /**
   * Starts (or, while it runs, reports on) the download of a hub model; idempotent: one
   * download per model however many callers ask. FORBIDDEN for a model off the allowlist.
   */
  download(modelId: string, revision?: string): Promise<DownloadStatus>;
  /** Resolves when every download in progress has settled (tests, shutdown). */
  settled(): Promise<void>;
}

/**
 * Creates a registry over the given folders and the catalog: the folder store, the loaded
 * models with their memory budget, and the downloads, all sharing one entry per model id.
 */
export function createModelRegistry(options: ModelRegistryOptions): ModelRegistry {
  const store = createModelStore(options);
  const loaded = createLoadedModels(options, store.entries);
  const downloads = createModelDownloads(options, store, loaded.load);

  return {
    async start() {
      await store.scan();
      const entry = store.entries.get(options.defaultModelId);
      if (entry?.manifest) await loaded.load(entry).catch(() => undefined);
    },
    async resolve(name) {
      const { entry, preset } = await store.lookupOrRescan(name);
      const { model, release } = await loaded.hold(entry);
      return { model, preset, release };
    },
    defaultModel: () => store.entries.get(options.defaultModelId)?.served,
    describe: () => [...store.entries.values()].map((entry) => describeModel(entry, store)),
    describeOne: async (name) => describeModel((await store.lookupOrRescan(name)).entry, store),
    knows: store.knows,
    failures: store.failures,
    download: downloads.download,
    settled: downloads.settled,
  };
}
