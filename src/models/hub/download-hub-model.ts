import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm, stat, truncate } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import type { ModelManifest } from "../manifest.js";
import { describeSentenceTransformersFolder, folderNameOf, hashFolder, writeManifest } from "../hf-folder.js";
import { MANIFEST_FILE } from "../manifest.js";
import { isCommitId, planDownload, type HubModelInfo, type PlannedFile } from "./hub-listing.js";

/** Where and how to reach a Hugging Face–compatible hub. */
export interface HubSettings {
  /** Base URL, e.g. `https://huggingface.co` (`HF_ENDPOINT`). */
  endpoint: string;
  /** Bearer token for gated or private repositories (`HF_TOKEN`). */
  token?: string;
  /** Attempts per file after a dropped connection (each resumes with Range). Default 5. */
  retries?: number;
}

/** Bytes so far, for progress and ETA. */
export interface DownloadProgress {
  bytesDone: number;
  bytesTotal: number;
  /** Bytes fetched by this run (resumed bytes excluded), for the rate. */
  bytesFetched: number;
  phase: "listing" | "downloading" | "verifying" | "variants" | "installing" | "warmup";
}

/** Options of {@link downloadHubModel}. */
export interface DownloadHubModelOptions {
  hub: HubSettings;
  repo: string;
  /** Branch, tag or commit; default `main`. */
  revision?: string;
  /** The models folder the model is installed into (as `<org>--<name>`). */
  modelsDir: string;
  onProgress?: (progress: DownloadProgress) => void;
  /**
   * Runs on the complete, verified folder before it becomes visible: builds precision variants
   * and returns the manifest to write (e.g. with `variants` filled in).
   */
  prepare?: (dir: string, manifest: ModelManifest) => Promise<ModelManifest>;
  signal?: AbortSignal;
}

/** A download failure whose message is safe to show in the model's status. */
export class HubDownloadError extends Error {
  /** True for failures another attempt may get past (server errors, a refused range). */
  readonly retryable: boolean;
  /** True when the bytes themselves are wrong (checksum, longer than declared), so nothing fetched may be kept. */
  readonly corrupt: boolean;

  constructor(message: string, options: { cause?: unknown; retryable?: boolean; corrupt?: boolean } = {}) {
    super(message, { cause: options.cause });
    this.name = "HubDownloadError";
    this.retryable = options.retryable ?? false;
    this.corrupt = options.corrupt ?? false;
  }
}

/**
 * The absolute path of `relativePath` under `root`, refused with a {@link HubDownloadError} unless,
 * once resolved, it lies strictly inside `root`. Every path the download creates, writes, deletes
 * or renames is built with it, so a value from the hub (a commit, a file name) cannot reach outside
 * the models folder even where a check on the value itself is missed. The check is on the resolved
 * path text: links the operator placed inside the models folder are followed as they are.
 */
export function containedPath(root: string, relativePath: string): string {
  const base = resolve(root);
  const path = resolve(base, relativePath);
  const inside = relative(base, path);
  if (inside === "" || inside === ".." || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
    throw new HubDownloadError(`refusing the download path ${JSON.stringify(relativePath)}: it leaves the folder it belongs in`);
  }
  return path;
}

const encodePath = (path: string) => path.split("/").map(encodeURIComponent).join("/");

function headers(hub: HubSettings, extra: Record<string, string> = {}): Record<string, string> {
  return { ...(hub.token ? { authorization: `Bearer ${hub.token}` } : {}), "user-agent": "sutra-embedder", ...extra };
}

function refusal(status: number, what: string): HubDownloadError {
  const hint = status === 401 || status === 403 ? " (gated or private: set HF_TOKEN)" : status === 404 ? " (not found)" : "";
  return new HubDownloadError(`the hub answered ${status} for ${what}${hint}`, { retryable: status >= 500 || status === 429 });
}

/** Asks the hub's model-info API for the file listing of `repo` at `revision`. */
export async function fetchModelInfo(hub: HubSettings, repo: string, revision: string, signal?: AbortSignal): Promise<HubModelInfo> {
  const url = `${hub.endpoint.replace(/\/+$/, "")}/api/models/${encodePath(repo)}/revision/${encodeURIComponent(revision)}?blobs=true`;
  let response: Response;
  try {
    response = await fetch(url, { headers: headers(hub), signal });
  } catch (error) {
    throw new HubDownloadError(`cannot reach the hub at ${hub.endpoint}`, { cause: error });
  }
  if (!response.ok) throw refusal(response.status, `the listing of ${repo}@${revision}`);
  const body = (await response.json()) as Partial<HubModelInfo>;
  if (typeof body.sha !== "string" || !Array.isArray(body.siblings)) throw new HubDownloadError(`the hub's listing of ${repo} has no sha or siblings`);
  if (!isCommitId(body.sha)) {
    throw new HubDownloadError(`the hub's listing of ${repo}@${revision} names the commit ${JSON.stringify(body.sha.slice(0, 100))}, which is not a 40-hex-digit commit id`);
  }
  return { sha: body.sha, siblings: body.siblings };
}

async function sizeOf(path: string): Promise<number | undefined> {
  return stat(path).then((info) => info.size, () => undefined);
}

async function digestOf(path: string, file: PlannedFile): Promise<string> {
  const hash = createHash(file.check.kind === "sha256" ? "sha256" : "sha1");
  if (file.check.kind === "git-blob-sha1") hash.update(`blob ${file.size}\0`);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Where a planned file is written (`target`) and fetched into first (`partial`), both inside `dir`. */
function filePaths(dir: string, file: PlannedFile): { target: string; partial: string } {
  return { target: containedPath(dir, file.path), partial: containedPath(dir, `${file.path}.part`) };
}

/**
 * Fetches one file into its `.part`, resuming with `Range` from what is already there, retrying a
 * dropped connection with backoff, then verifies it and renames it into place. No more than the
 * declared size is ever written: an answer that announces or sends more is corrupt (its `.part` is
 * deleted, nothing is retried); a shorter one leaves its `.part` to resume from.
 */
async function fetchFile(
  options: DownloadHubModelOptions,
  url: string,
  file: PlannedFile,
  dir: string,
  progress: (fetched: number) => void,
): Promise<void> {
  const retries = options.hub.retries ?? 5;
  const { target, partial } = filePaths(dir, file);
  const overlong = () => new HubDownloadError(`${file.path}: the hub sent more than the ${file.size} bytes its listing declares`, { corrupt: true });
  await mkdir(dirname(target), { recursive: true });
  for (let attempt = 0; ; attempt++) {
    let have = (await sizeOf(partial)) ?? 0;
    if (have > file.size) {
      await truncate(partial, 0);
      have = 0;
    }
    try {
      if (have < file.size) {
        const response = await fetch(url, {
          headers: headers(options.hub, have > 0 ? { range: `bytes=${have}-` } : {}),
          signal: options.signal,
          redirect: "follow",
        });
        if (response.status === 416) {
          await truncate(partial, 0);
          throw new HubDownloadError(`the hub refused the range of ${file.path}`, { retryable: true });
        }
        if (!response.ok || response.body === null) throw refusal(response.status, file.path);
        const resumed = response.status === 206;
        if (!resumed && have > 0) have = 0;
        if (Number(response.headers.get("content-length")) > file.size - have) {
          await response.body.cancel();
          throw overlong();
        }
        const handle = await open(partial, resumed ? "a" : "w");
        let written = have;
        try {
          for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
            if (written + chunk.byteLength > file.size) throw overlong();
            await handle.write(chunk);
            written += chunk.byteLength;
            progress(chunk.byteLength);
          }
        } finally {
          await handle.close();
        }
      }
      const got = (await sizeOf(partial)) ?? 0;
      if (got !== file.size) throw new Error(`${file.path}: got ${got} of ${file.size} bytes`);
      break;
    } catch (error) {
      if (options.signal?.aborted) throw error;
      if (error instanceof HubDownloadError && error.corrupt) await rm(partial, { force: true });
      if (error instanceof HubDownloadError && !error.retryable) throw error;
      if (attempt >= retries) throw new HubDownloadError(`downloading ${file.path} failed after ${retries + 1} attempts`, { cause: error });
      await delay(Math.min(2_000, 100 * 2 ** attempt));
    }
  }
  const actual = await digestOf(partial, file);
  if (actual !== file.check.digest) {
    await rm(partial, { force: true });
    const name = file.check.kind === "sha256" ? "sha256" : "git blob sha1";
    throw new HubDownloadError(`${file.path} failed verification: ${name} ${actual} does not match the hub's ${file.check.digest}`, { corrupt: true });
  }
  await rename(partial, target);
}

/**
 * Downloads a sentence-transformers model with ONNX weights from a Hugging Face–compatible hub
 * and installs it in `modelsDir/<org>--<name>`: the model-info API lists the files at the
 * revision (pinned to the commit it resolves to), only the files the model needs are fetched
 * through the resolve route into `modelsDir/.downloads/<folder>@<commit>/`, each is resumed with
 * `Range` after a dropped connection and verified (sha256 from the LFS metadata, the git blob id
 * otherwise); then `prepare` runs (precision variants), `sutra-model.json` is written with the
 * sha256 of every file, and the folder is renamed into place. A verification failure removes the
 * temporary folder; a network failure keeps it so the next attempt resumes. Nothing is visible
 * in the models folder until the rename.
 */
export async function downloadHubModel(options: DownloadHubModelOptions): Promise<{ dir: string; manifest: ModelManifest }> {
  const revision = options.revision || "main";
  const endpoint = options.hub.endpoint.replace(/\/+$/, "");
  const report = (progress: DownloadProgress) => options.onProgress?.(progress);
  report({ bytesDone: 0, bytesTotal: 0, bytesFetched: 0, phase: "listing" });
  const info = await fetchModelInfo(options.hub, options.repo, revision, options.signal);
  let plan: PlannedFile[];
  try {
    plan = planDownload(info);
  } catch (error) {
    throw new HubDownloadError((error as Error).message, { cause: error });
  }
  const folder = folderNameOf(options.repo);
  const finalDir = containedPath(options.modelsDir, folder);
  const temporaryDir = containedPath(join(options.modelsDir, ".downloads"), `${folder}@${info.sha}`);
  await mkdir(temporaryDir, { recursive: true });

  const bytesTotal = plan.reduce((sum, file) => sum + file.size, 0);
  let bytesDone = 0;
  let bytesFetched = 0;
  for (const file of plan) {
    const { target, partial } = filePaths(temporaryDir, file);
    bytesDone += Math.min(file.size, (await sizeOf(target)) ?? (await sizeOf(partial)) ?? 0);
  }
  report({ bytesDone, bytesTotal, bytesFetched, phase: "downloading" });
  try {
    for (const file of plan) {
      const { target, partial } = filePaths(temporaryDir, file);
      if ((await sizeOf(target)) === file.size && (await digestOf(target, file)) === file.check.digest) continue;
      await rm(target, { force: true });
      const url = `${endpoint}/${encodePath(options.repo)}/resolve/${encodeURIComponent(info.sha)}/${encodePath(file.path)}`;
      const before = (await sizeOf(partial)) ?? 0;
      let counted = Math.min(before, file.size);
      await fetchFile(options, url, file, temporaryDir, (fetched) => {
        bytesFetched += fetched;
        counted += fetched;
        report({ bytesDone: Math.min(bytesTotal, bytesDone + counted), bytesTotal, bytesFetched, phase: "downloading" });
      });
      bytesDone += file.size - Math.min(before, file.size);
    }
  } catch (error) {
    if (error instanceof HubDownloadError && error.corrupt) await rm(temporaryDir, { recursive: true, force: true });
    throw error;
  }
  report({ bytesDone: bytesTotal, bytesTotal, bytesFetched, phase: "verifying" });

  let manifest: ModelManifest;
  try {
    const hub = { endpoint, repo: options.repo, revision, commit: info.sha };
    manifest = await describeSentenceTransformersFolder(temporaryDir, { id: options.repo, hub });
    report({ bytesDone: bytesTotal, bytesTotal, bytesFetched, phase: "variants" });
    if (options.prepare) manifest = await options.prepare(temporaryDir, manifest);
    const verified = Object.fromEntries(plan.filter((file) => file.check.kind === "sha256").map((file) => [file.path, file.check.digest]));
    manifest = { ...manifest, files: await hashFolder(temporaryDir, verified) };
    await writeManifest(temporaryDir, manifest);
  } catch (error) {
    await rm(temporaryDir, { recursive: true, force: true });
    throw error instanceof HubDownloadError ? error : new HubDownloadError(`the downloaded folder cannot be served: ${(error as Error).message}`, { cause: error });
  }
  report({ bytesDone: bytesTotal, bytesTotal, bytesFetched, phase: "installing" });
  if ((await sizeOf(join(finalDir, MANIFEST_FILE))) !== undefined) await rm(finalDir, { recursive: true, force: true });
  await rename(temporaryDir, finalDir);
  return { dir: finalDir, manifest };
}
