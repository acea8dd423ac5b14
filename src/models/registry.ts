import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { EmbedderError } from "../domain/errors.js";
import type { HardwareProfileName, ModelDescription, ModelDownloadStatus } from "../domain/types.js";
import { loadTokenizer, type Tokenizer } from "../tokenize/index.js";
import { MODEL_CATALOG, catalogEntry, type CatalogEntry } from "./catalog.js";
import { describeSentenceTransformersFolder, isSentenceTransformersFolder } from "./hf-folder.js";
import { HubDownloadError, downloadHubModel, type DownloadProgress, type HubSettings } from "./hub/download-hub-model.js";
import { MANIFEST_FILE, type ModelManifest } from "./manifest.js";
import { DEFAULT_TASK_PRESETS } from "./task-presets.js";
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

/** Hub settings plus who may be downloaded. */
export interface RegistryHubOptions extends HubSettings {
  /**
   * Model ids DownloadModel accepts (`org/name`, or `org/*` for an organisation); empty or
   * absent: any. Others get FORBIDDEN.
   */
  allowlist?: string[];
}

/** Options of the registry. */
export interface ModelRegistryOptions {
  /** Folders scanned in order; the first holding an id wins (built-in first). */
  modelDirs: string[];
  /** Where downloads are installed; default the last of `modelDirs`. */
  downloadDir?: string;
  defaultModelId: string;
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

interface DownloadJob {
  revision: string;
  startedAt: number;
  progress: DownloadProgress;
  done: Promise<void>;
}

interface Entry {
  id: string;
  dir?: string;
  manifest?: ModelManifest;
  catalog?: CatalogEntry;
  loaded?: Promise<ServedModel>;
  served?: ServedModel;
  /** Why the last load or download failed. */
  failure?: string;
  /** A DownloadModel call has answered with the failure; the next call retries. */
  failureReported?: boolean;
  download?: DownloadJob;
  /** Requests holding the model (not unloadable while > 0). */
  leases: number;
  lastUsed: number;
  /** Estimated memory when loaded, MB. */
  memoryMb: number;
}

/** Least time between two rescans of the model folders triggered by unknown names. */
const RESCAN_INTERVAL_MS = 2_000;

/** A hub id: `name` or `org/name`, letters, digits, `-`, `_`, `.`; no `..`. */
const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/;

async function fileSizeMb(path: string): Promise<number> {
  return stat(path).then((info) => info.size / (1024 * 1024), () => 0);
}

async function folderSizeMb(dir: string, manifest: ModelManifest): Promise<number> {
  const files = Object.keys(manifest.files).length > 0
    ? Object.keys(manifest.files)
    : Object.values(manifest.variants).map((variant) => variant.file);
  let total = 0;
  for (const file of files) total += await fileSizeMb(join(dir, file));
  return total;
}

async function readManifest(dir: string): Promise<ModelManifest | undefined> {
  const text = await readFile(join(dir, MANIFEST_FILE), "utf8").catch(() => undefined);
  if (text !== undefined) return JSON.parse(text) as ModelManifest;
  if (await isSentenceTransformersFolder(dir)) return describeSentenceTransformersFolder(dir);
  return undefined;
}

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

function allowed(allowlist: string[] | undefined, id: string): boolean {
  if (!allowlist || allowlist.length === 0) return true;
  return allowlist.some((pattern) => pattern === id || (pattern.endsWith("/*") && id.startsWith(pattern.slice(0, -1))));
}

/** Creates a registry over the given folders and the catalog. */
export function createModelRegistry(options: ModelRegistryOptions): ModelRegistry {
  const entries = new Map<string, Entry>();
  /** Keyed by client words: a Map, so `constructor` or `__proto__` is just an unknown name. */
  const aliases = new Map(Object.entries(options.aliases ?? {}));
  const downloadDir = options.downloadDir ?? options.modelDirs.at(-1);
  const sessionsPerModel = Math.max(1, options.sessionsPerModel ?? 1);
  /** Folders that failed to scan (bad manifest, unsupported layout), by folder name. */
  const scanFailures: Array<{ id: string; reason: string }> = [];
  let clock = 0;

  const entryFor = (id: string): Entry => {
    let entry = entries.get(id);
    if (!entry) {
      entry = { id, leases: 0, lastUsed: 0, memoryMb: 0, catalog: catalogEntry(id) };
      entries.set(id, entry);
    }
    return entry;
  };

  /** Folders already read (rescans read only new ones). */
  const seenDirs = new Set<string>();
  const addFolder = async (dir: string, folderName: string): Promise<void> => {
    if (seenDirs.has(dir)) return;
    try {
      const manifest = await readManifest(dir);
      if (!manifest) return;
      seenDirs.add(dir);
      const entry = entryFor(manifest.id);
      if (entry.dir && (entry.dir !== dir || entry.manifest)) return;
      entry.dir = dir;
      entry.manifest = manifest;
      entry.memoryMb = (await fileSizeMb(join(dir, manifest.variants.fp32?.file ?? "model.onnx"))) * sessionsPerModel;
    } catch (error) {
      seenDirs.add(dir);
      if (scanFailures.some((failure) => failure.id === folderName)) return;
      scanFailures.push({ id: folderName, reason: `folder ${folderName} cannot be served: ${(error as Error).message}` });
    }
  };

  let lastScan = 0;
  /**
   * Looks a name up; a name nothing matches triggers one rescan of the folders (at most one per
   * `rescanIntervalMs`), so a model folder copied in while the server runs is found on its first
   * request without a restart.
   */
  const lookupOrRescan = async (name: string): Promise<{ entry: Entry; preset: Preset }> => {
    try {
      return lookup(name);
    } catch (error) {
      if (Date.now() - lastScan < (options.rescanIntervalMs ?? RESCAN_INTERVAL_MS)) throw error;
      await scan();
      return lookup(name);
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

  const unload = (entry: Entry): void => {
    if (!entry.served || !entry.dir) return;
    entry.served = undefined;
    entry.loaded = undefined;
    options.releaseModel?.(entry.dir);
    options.onEvent?.({ kind: "unloaded", modelId: entry.id });
  };

  /** Unloads least recently used models nobody holds until the loaded ones fit the budget. */
  const enforceBudget = (keep: Entry): void => {
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

  const load = (entry: Entry): Promise<ServedModel> => {
    const dir = entry.dir;
    const known = entry.manifest;
    if (!dir || !known) return Promise.reject(notReady(entry));
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

  const statusOf = (entry: Entry): ModelDescription["status"] => {
    if (entry.download) return "downloading";
    if (entry.failure) return "failed";
    if (entry.served) return "loaded";
    if (entry.manifest) return "ready";
    return "available";
  };

  const notReady = (entry: Entry): EmbedderError => {
    const status = statusOf(entry);
    const why = status === "downloading" ? "is still downloading; call DownloadModel to follow it"
      : status === "failed" ? `failed: ${entry.failure}`
        : "is not downloaded; call DownloadModel first";
    return new EmbedderError("MODEL_NOT_READY", `model ${entry.id} ${why}`, {
      details: { model: entry.id, status, ...(entry.failure ? { reason: entry.failure } : {}) },
      retryAfterMs: status === "downloading" ? 1000 : undefined,
    });
  };

  const lookup = (name: string): { entry: Entry; preset: Preset } => {
    const preset = (PRESETS as readonly string[]).includes(name) ? (name as Preset) : name === "" ? "efficient" : undefined;
    const id = preset ? options.defaultModelId : aliases.get(name) ?? name;
    const entry = entries.get(id);
    if (!entry) {
      throw new EmbedderError("UNKNOWN_MODEL", `unknown model "${name}"`, {
        details: { model: name, available: [...[...entries.values()].filter((candidate) => candidate.manifest).map((candidate) => candidate.id), ...PRESETS] },
      });
    }
    return { entry, preset: preset ?? "efficient" };
  };

  const describeEntry = (entry: Entry): ModelDescription => {
    const manifest = entry.manifest;
    const catalog = entry.catalog;
    const job = entry.download;
    const progress = job && job.progress.bytesTotal > 0 ? job.progress.bytesDone / job.progress.bytesTotal : 0;
    return {
      id: entry.id,
      name: manifest?.name ?? catalog?.name ?? entry.id,
      dimensions: manifest?.dimensions ?? catalog?.dimensions ?? 0,
      qualityScore: manifest?.qualityScore ?? catalog?.qualityScore ?? 0,
      sizeMb: entry.served?.sizeMb ?? (manifest ? entry.memoryMb / sessionsPerModel : catalog?.sizeMb ?? 0),
      license: manifest?.license ?? catalog?.license ?? "unknown",
      status: statusOf(entry),
      statusReason: job ? `downloading (${job.progress.phase})` : entry.failure ?? "",
      maxTokens: manifest?.maxTokens ?? catalog?.maxTokens ?? 0,
      matryoshkaDimensions: manifest?.matryoshkaDimensions ?? catalog?.matryoshkaDimensions ?? [],
      precisions: manifest ? Object.keys(manifest.variants) : [],
      hardwareProfiles: profilesFor(manifest ? entry.memoryMb / sessionsPerModel : catalog?.sizeMb ?? 0),
      pooling: manifest?.pooling ?? catalog?.pooling ?? "",
      aliases: [...aliases].filter(([, id]) => id === entry.id).map(([alias]) => alias),
      source: manifest?.source ?? (catalog ? `hub ${catalog.id} (not downloaded)` : ""),
      downloadProgress: progress,
      downloadEtaSeconds: job ? etaOf(job) : 0,
      promptNames: manifest ? [...Object.keys(manifest.prompts), ...Object.keys(manifest.taskPresets ?? DEFAULT_TASK_PRESETS)] : [],
      revision: manifest?.hub?.commit ?? "",
    };
  };

  const etaOf = (job: DownloadJob): number => {
    const seconds = (Date.now() - job.startedAt) / 1000;
    const rate = seconds > 0 ? job.progress.bytesFetched / seconds : 0;
    const left = job.progress.bytesTotal - job.progress.bytesDone;
    return rate > 0 && left > 0 ? left / rate : 0;
  };

  const downloadStatus = (entry: Entry, message: string): DownloadStatus => {
    const job = entry.download;
    const status = statusOf(entry);
    const done = status === "ready" || status === "loaded";
    const bytesTotal = job?.progress.bytesTotal ?? 0;
    const bytesDownloaded = job?.progress.bytesDone ?? 0;
    return {
      modelId: entry.id,
      status,
      progress: done ? 1 : bytesTotal > 0 ? bytesDownloaded / bytesTotal : 0,
      etaSeconds: job ? etaOf(job) : 0,
      bytesDownloaded,
      bytesTotal,
      message: status === "failed" ? entry.failure ?? "failed" : job ? `downloading (${job.progress.phase})` : message,
    };
  };

  const startDownload = (entry: Entry, revision: string): void => {
    const hub = options.hub;
    if (!hub || !downloadDir) throw new EmbedderError("NOT_IMPLEMENTED", "downloads are not configured on this server");
    const job: DownloadJob = {
      revision,
      startedAt: Date.now(),
      progress: { bytesDone: 0, bytesTotal: 0, bytesFetched: 0, phase: "listing" },
      done: Promise.resolve(),
    };
    entry.failure = undefined;
    entry.download = job;
    job.done = (async () => {
      try {
        await mkdir(downloadDir, { recursive: true });
        const { dir, manifest } = await downloadHubModel({
          hub,
          repo: entry.id,
          revision,
          modelsDir: downloadDir,
          prepare: options.prepareDownload,
          onProgress: (progress) => {
            job.progress = progress;
          },
        });
        entry.dir = dir;
        entry.manifest = manifest;
        entry.memoryMb = (await fileSizeMb(join(dir, manifest.variants.fp32?.file ?? "model.onnx"))) * sessionsPerModel;
        job.progress = { ...job.progress, phase: "warmup" };
        options.onEvent?.({ kind: "downloaded", modelId: entry.id });
        await load(entry);
        if (options.warmup) await options.warmup(entry.id);
        entry.download = undefined;
      } catch (error) {
        entry.download = undefined;
        entry.failureReported = false;
        const reason = error instanceof HubDownloadError || error instanceof EmbedderError
          ? error.message
          : `download failed: ${(error as Error).message}`;
        entry.failure = reason;
        options.onEvent?.({ kind: "failed", modelId: entry.id, reason });
      }
    })();
  };

  return {
    async start() {
      await scan();
      const entry = entries.get(options.defaultModelId);
      if (entry?.manifest) await load(entry).catch(() => undefined);
    },
    async resolve(name) {
      const { entry, preset } = await lookupOrRescan(name);
      if ((entry.download && entry.download.progress.phase !== "warmup") || !entry.manifest) throw notReady(entry);
      entry.leases++;
      try {
        const model = await load(entry);
        entry.lastUsed = ++clock;
        let released = false;
        return {
          model,
          preset,
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
    defaultModel: () => entries.get(options.defaultModelId)?.served,
    describe: () => [...entries.values()].map(describeEntry),
    describeOne: async (name) => describeEntry((await lookupOrRescan(name)).entry),
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
    async download(modelId, revision = "") {
      if (!MODEL_ID.test(modelId) || modelId.includes("..")) {
        throw new EmbedderError("INVALID_ARGUMENT", `"${modelId}" is not a hub model id (org/name)`, { details: { field: "model_id" } });
      }
      if (!allowed(options.hub?.allowlist, modelId)) {
        throw new EmbedderError("FORBIDDEN", `model ${modelId} is not on this server's allowlist (SUTRA_MODEL_ALLOWLIST)`, {
          details: { model: modelId },
        });
      }
      const entry = entryFor(aliases.get(modelId) ?? modelId);
      if (entry.download) return downloadStatus(entry, "");
      if (entry.manifest && !entry.failure) return downloadStatus(entry, "already installed");
      if (entry.manifest && entry.failure && entry.dir && !entry.manifest.hub) return downloadStatus(entry, "");
      if (entry.failure && !entry.failureReported) {
        entry.failureReported = true;
        return downloadStatus(entry, "");
      }
      startDownload(entry, revision || "main");
      return downloadStatus(entry, "download started");
    },
    async settled() {
      await Promise.all([...entries.values()].map((entry) => entry.download?.done));
    },
  };
}
