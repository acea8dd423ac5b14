import { EmbedderError } from "../domain/errors.js";
import type { ModelDescription } from "../domain/types.js";
import type { Tokenizer } from "../tokenize/index.js";
import type { CatalogEntry } from "./catalog.js";
import type { DownloadProgress } from "./hub/download-hub-model.js";
import type { ModelManifest } from "./manifest.js";

/** A model ready to serve: verified files, tokenizer loaded. */
export interface ServedModel {
  manifest: ModelManifest;
  dir: string;
  tokenizer: Tokenizer;
  sizeMb: number;
}

/** A hub download in progress; `done` settles once it is installed and loaded, or has failed. */
export interface DownloadJob {
  revision: string;
  startedAt: number;
  progress: DownloadProgress;
  done: Promise<void>;
}

/**
 * All the registry knows about one model id: its folder and manifest once on disk, its catalog
 * entry, its loaded form, its download and its leases. One mutable record per id, shared by the
 * folder store, the loaded models, the downloads and the ListModels view, so each sees the others'
 * changes at once.
 */
export interface ModelEntry {
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

/**
 * The status ListModels and DownloadModel report for an entry. A download in progress wins over
 * an earlier failure, and a failure over a loaded model, so callers see what they can act on.
 */
export function entryStatus(entry: ModelEntry): ModelDescription["status"] {
  if (entry.download) return "downloading";
  if (entry.failure) return "failed";
  if (entry.served) return "loaded";
  if (entry.manifest) return "ready";
  return "available";
}

/**
 * The MODEL_NOT_READY error for an entry that cannot serve yet; the message says what to do
 * (wait, download) and the details carry the status and any failure, so clients can branch on them.
 */
export function notReadyError(entry: ModelEntry): EmbedderError {
  const status = entryStatus(entry);
  const why = status === "downloading" ? "is still downloading; call DownloadModel to follow it"
    : status === "failed" ? `failed: ${entry.failure}`
      : "is not downloaded; call DownloadModel first";
  return new EmbedderError("MODEL_NOT_READY", `model ${entry.id} ${why}`, {
    details: { model: entry.id, status, ...(entry.failure ? { reason: entry.failure } : {}) },
    retryAfterMs: status === "downloading" ? 1000 : undefined,
  });
}
