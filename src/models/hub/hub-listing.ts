import { posix } from "node:path";
import { ONNX_CANDIDATES, SENTENCE_TRANSFORMERS_FILES } from "../hf-folder.js";

/** One file of a hub repository as the model-info API lists it (`?blobs=true`). */
export interface HubSibling {
  rfilename: string;
  size?: number;
  /** Git blob id (SHA-1 of `blob <size>\0<content>`), for files stored in git. */
  blobId?: string;
  /** Large files stored with Git LFS: their sha256 and size. */
  lfs?: { sha256?: string; oid?: string; size?: number };
}

/** The model-info answer, reduced to what a download needs. */
export interface HubModelInfo {
  /** The commit the revision resolved to. */
  sha: string;
  siblings: HubSibling[];
}

/** A file to fetch, with what it must verify against. */
export interface PlannedFile {
  path: string;
  size: number;
  check: { kind: "sha256"; digest: string } | { kind: "git-blob-sha1"; digest: string };
}

/**
 * True when a listed file name is a plain relative path that stays inside the folder it is
 * written to: no absolute path, no `.` or `..` segment, no backslash, no control character, no
 * leading dot on any segment (hidden files would escape the manifest).
 */
export function isSafeRelativePath(name: string): boolean {
  if (name.length === 0 || name.length > 512) return false;
  if (name.startsWith("/") || name.includes("\\") || /[\u0000-\u001f]/.test(name)) return false;
  if (posix.normalize(name) !== name) return false;
  return name.split("/").every((segment) => segment !== "" && segment !== "." && segment !== ".." && !segment.startsWith("."));
}

const COMMIT_ID = /^[0-9a-f]{40}$/;

/**
 * True when the hub's `sha` is a git commit id: exactly 40 lowercase hex characters. The commit
 * names the download's temporary folder and goes into resolve URLs, so nothing else is accepted.
 */
export function isCommitId(sha: string): boolean {
  return COMMIT_ID.test(sha);
}

const MODULE_CONFIG = /^\d+_[A-Za-z]+\/config\.json$/;

/**
 * Chooses the files a model needs from a listing: the fp32 ONNX file (`onnx/model.onnx`, else
 * `model.onnx`) with its external-data files, the tokenizer and sentence-transformers configs, and
 * the module configs (`1_Pooling/config.json`, ...). Weights in other formats and other ONNX
 * variants are left out (variants are built and gated here). Throws when any listed name is
 * unsafe (the whole listing is refused), when the repository has no ONNX weights or no
 * tokenizer.json, or when a needed file has no checksum to verify.
 */
export function planDownload(info: HubModelInfo): PlannedFile[] {
  const unsafe = info.siblings.map((sibling) => sibling.rfilename).filter((name) => !isSafeRelativePath(name));
  if (unsafe.length > 0) throw new Error(`the hub listing has file names that escape the model folder: ${unsafe.slice(0, 3).map((name) => JSON.stringify(name)).join(", ")}`);
  const names = new Set(info.siblings.map((sibling) => sibling.rfilename));
  const onnx = ONNX_CANDIDATES.find((candidate) => names.has(candidate));
  if (onnx === undefined) throw new Error("the repository has no ONNX weights (onnx/model.onnx or model.onnx)");
  if (!names.has("tokenizer.json")) throw new Error("the repository has no tokenizer.json");
  const wanted = (name: string) =>
    name === onnx ||
    (name.startsWith(`${onnx}_data`) || name === `${onnx}.data`) ||
    (SENTENCE_TRANSFORMERS_FILES as readonly string[]).includes(name) ||
    MODULE_CONFIG.test(name);
  return info.siblings.filter((sibling) => wanted(sibling.rfilename)).map((sibling) => {
    const sha256 = sibling.lfs?.sha256 ?? sibling.lfs?.oid;
    const size = sibling.lfs?.size ?? sibling.size;
    if (size === undefined) throw new Error(`the hub listing gives no size for ${sibling.rfilename}`);
    if (sha256 !== undefined) return { path: sibling.rfilename, size, check: { kind: "sha256", digest: sha256.toLowerCase() } };
    if (sibling.blobId !== undefined) return { path: sibling.rfilename, size, check: { kind: "git-blob-sha1", digest: sibling.blobId.toLowerCase() } };
    throw new Error(`the hub listing gives no checksum for ${sibling.rfilename}`);
  });
}
