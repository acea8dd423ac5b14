import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import type { ModelProto } from "../../../gen/onnx/onnx_pb.js";
import { encodeModel } from "../../onnx/model-io.js";
import { buildPrecisionVariants, toManifestVariants, type VariantLogger } from "../../onnx/quantize/build-variants.js";
import type { Feeds } from "../../onnx/quantize/quality-gate.js";
import { loadTokenizer } from "../../tokenize/index.js";
import { buildUseLiteTokenizerJson } from "../../tokenize/use-lite-vocab.js";
import { USE_LITE_CALIBRATION_TEXTS } from "./calibration-texts.js";
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
  /** Told which precision variants were written or refused, and why. */
  logger?: VariantLogger;
}

/** What {@link buildUseLiteFolder} did. */
export interface UseLiteFolderResult {
  /** True when the folder was already current and nothing was written. */
  skipped: boolean;
  manifest: UseLiteManifest;
  elapsedMs: number;
}

/** Version of the variant step (calibration set, precisions); bump it to rebuild the variants. */
const VARIANTS_VERSION = 4;

/** Texts per calibration batch: mixed lengths, so the gate's batch-invariance check means something. */
const CALIBRATION_BATCH = 16;

/**
 * The build stamp: converter and variant-step versions and exact source package version. A
 * folder whose manifest carries another stamp is rebuilt.
 */
export function useLiteBuildStamp(): string {
  return `use-lite-converter/${USE_LITE_CONVERTER_VERSION} variants/${VARIANTS_VERSION} npm:${USE_LITE_SOURCE_PACKAGE}@${useLiteSourceVersion()}`;
}

/**
 * The int4 layouts tried, most compressed first; the first that passes the int4 gate on the
 * calibration set is kept. Each names the weight products stored in 4 bits (block 16); the
 * others go to 8 bits. Measured on the calibration set: all-int4 reaches min cosine 0.94 (the
 * residual dense and the first q/k/v projection lose most), 4-bit feed-forward weights in both
 * layers about 0.98, 4-bit feed-forward weights of the second layer about 0.99.
 */
const INT4_LAYOUTS: ReadonlyArray<{ name: string; fourBit: RegExp }> = [
  { name: "feed-forward weights of both layers", fourBit: /\.ffn\./ },
  { name: "feed-forward weights of the second layer", fourBit: /^layer1\.ffn\./ },
];

/**
 * The int4 gate this build applies: the product bar (min cosine 0.98) plus a margin, because a
 * 52-text calibration set measures the minimum loosely; a layout that only just clears 0.98 here
 * can fall below it on other texts.
 */
const INT4_BUILD_GATE = { min: 0.985 };

/** Weight products of the model not matched by `fourBit`: they stay out of 4 bits. */
function weightsOutside(model: ModelProto, fourBit: RegExp): string[] {
  const initializers = new Set((model.graph?.initializer ?? []).map((tensor) => tensor.name));
  return (model.graph?.node ?? [])
    .filter((node) => node.opType === "MatMul" && initializers.has(node.input[1]) && !fourBit.test(node.input[1]))
    .map((node) => node.input[1]);
}

/** The calibration set as padded feeds, through the same tokenizer the service uses. */
async function calibrationFeeds(tokenizerPath: string): Promise<Feeds[]> {
  const tokenizer = await loadTokenizer(tokenizerPath, { maxTokens: USE_LITE_MAX_TOKENS });
  const feeds: Feeds[] = [];
  for (let start = 0; start < USE_LITE_CALIBRATION_TEXTS.length; start += CALIBRATION_BATCH) {
    const padded = tokenizer.pad(tokenizer.encodeBatch(USE_LITE_CALIBRATION_TEXTS.slice(start, start + CALIBRATION_BATCH)));
    const dims = [padded.batchSize, padded.sequenceLength];
    feeds.push({
      [USE_LITE_INPUTS[0]]: new ort.Tensor("int64", padded.inputIds, dims),
      [USE_LITE_INPUTS[1]]: new ort.Tensor("int64", padded.attentionMask, dims),
    });
  }
  return feeds;
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
 * `vocab.json` as `tokenizer.json` (`buildUseLiteTokenizerJson`), builds the fp16, int8 and
 * int4 variants that pass their quality gate on the calibration set
 * ({@link USE_LITE_CALIBRATION_TEXTS}; refused ones are logged), and writes `sutra-model.json`
 * with the variants, their gate results, the sha256 of every file and the build stamp.
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
  const converted = await convertUseLite(sourceDir);
  const artifacts = new Map<string, Uint8Array>([
    [USE_LITE_MODEL_FILE, encodeModel(converted)],
    [USE_LITE_TOKENIZER_FILE, tokenizer],
  ]);
  const files: Record<string, string> = {};
  for (const [file, bytes] of artifacts) {
    await writeAtomically(join(options.outDir, file), bytes);
    files[file] = sha256(bytes);
  }
  const variantOptions = {
    calibrationFeeds: await calibrationFeeds(join(options.outDir, USE_LITE_TOKENIZER_FILE)),
    sourceFile: USE_LITE_MODEL_FILE,
    output: USE_LITE_OUTPUT,
    logger: options.logger,
  };
  const variants = await buildPrecisionVariants(options.outDir, { ...variantOptions, precisions: ["fp16", "int8"] });
  for (const layout of INT4_LAYOUTS) {
    const [int4] = await buildPrecisionVariants(options.outDir, {
      ...variantOptions,
      precisions: ["int4"],
      int4: { blockSize: 16, exclude: weightsOutside(converted, layout.fourBit) },
      int4Remainder: "int8",
      thresholds: { int4: INT4_BUILD_GATE },
    });
    if (int4.written || layout === INT4_LAYOUTS[INT4_LAYOUTS.length - 1]) {
      variants.push(int4);
      break;
    }
  }
  for (const variant of variants.filter((result) => result.written)) {
    files[variant.file] = await sha256File(join(options.outDir, variant.file));
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
    variants: { fp32: { file: USE_LITE_MODEL_FILE }, ...toManifestVariants(variants) },
    files,
    build: stamp,
  };
  await writeAtomically(join(options.outDir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return { skipped: false, manifest, elapsedMs: performance.now() - started };
}
