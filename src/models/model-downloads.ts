import { mkdir } from "node:fs/promises";
import { EmbedderError } from "../domain/errors.js";
import type { ModelDownloadStatus } from "../domain/types.js";
import { HubDownloadError, downloadHubModel } from "./hub/download-hub-model.js";
import { entryStatus, type DownloadJob, type ModelEntry, type ServedModel } from "./model-entry.js";
import type { ModelRegistryOptions } from "./model-registry-options.js";
import type { ModelStore } from "./model-store.js";

/** A hub id: `name` or `org/name`, letters, digits, `-`, `_`, `.`; no `..`. */
const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/;

function allowed(allowlist: string[] | undefined, id: string): boolean {
  if (!allowlist || allowlist.length === 0) return true;
  return allowlist.some((pattern) => pattern === id || (pattern.endsWith("/*") && id.startsWith(pattern.slice(0, -1))));
}

/**
 * Seconds a download still needs at the rate this run has fetched so far (resumed bytes do not
 * count toward the rate); 0 while the rate or the remaining size is unknown.
 */
export function downloadEtaSeconds(job: DownloadJob): number {
  const seconds = (Date.now() - job.startedAt) / 1000;
  const rate = seconds > 0 ? job.progress.bytesFetched / seconds : 0;
  const left = job.progress.bytesTotal - job.progress.bytesDone;
  return rate > 0 && left > 0 ? left / rate : 0;
}

/** Hub downloads: one job per model, installed into the download folder and loaded when done. */
export interface ModelDownloads {
  /**
   * Starts (or, while it runs, reports on) the download of a hub model; idempotent: one
   * download per model however many callers ask. INVALID_ARGUMENT for a malformed id,
   * FORBIDDEN for a model off the allowlist, NOT_IMPLEMENTED when no hub is configured.
   */
  download(modelId: string, revision?: string): Promise<ModelDownloadStatus>;
  /** Resolves when every download in progress has settled (tests, shutdown). */
  settled(): Promise<void>;
}

/**
 * Creates the downloads over `store`; `load` loads a model once installed, so a finished
 * download is ready to serve (and warmed up) before it stops reporting `downloading`.
 */
export function createModelDownloads(
  options: ModelRegistryOptions,
  store: ModelStore,
  load: (entry: ModelEntry) => Promise<ServedModel>,
): ModelDownloads {
  const downloadDir = options.downloadDir ?? options.modelDirs.at(-1);

  const downloadStatus = (entry: ModelEntry, message: string): ModelDownloadStatus => {
    const job = entry.download;
    const status = entryStatus(entry);
    const done = status === "ready" || status === "loaded";
    const bytesTotal = job?.progress.bytesTotal ?? 0;
    const bytesDownloaded = job?.progress.bytesDone ?? 0;
    return {
      modelId: entry.id,
      status,
      progress: done ? 1 : bytesTotal > 0 ? bytesDownloaded / bytesTotal : 0,
      etaSeconds: job ? downloadEtaSeconds(job) : 0,
      bytesDownloaded,
      bytesTotal,
      message: status === "failed" ? entry.failure ?? "failed" : job ? `downloading (${job.progress.phase})` : message,
    };
  };

  const startDownload = (entry: ModelEntry, revision: string): void => {
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
        await store.install(entry, dir, manifest);
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
    async download(modelId, revision = "") {
      if (!MODEL_ID.test(modelId) || modelId.includes("..")) {
        throw new EmbedderError("INVALID_ARGUMENT", `"${modelId}" is not a hub model id (org/name)`, { details: { field: "model_id" } });
      }
      if (!allowed(options.hub?.allowlist, modelId)) {
        throw new EmbedderError("FORBIDDEN", `model ${modelId} is not on this server's allowlist (SUTRA_MODEL_ALLOWLIST)`, {
          details: { model: modelId },
        });
      }
      const entry = store.entryFor(store.aliases.get(modelId) ?? modelId);
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
      await Promise.all([...store.entries.values()].map((entry) => entry.download?.done));
    },
  };
}
