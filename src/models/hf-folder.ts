import { readdir, readFile, stat, writeFile, rename } from "node:fs/promises";
import { join, posix, relative, sep } from "node:path";
import { catalogEntry } from "./catalog.js";
import { MANIFEST_FILE, type ModelManifest, type Pooling } from "./manifest.js";
import { sha256File } from "./verify-files.js";

/**
 * Hugging Face sentence-transformers folders (docs/MODELS.md, "Model folders") as our manifest sees them. A folder
 * with `tokenizer.json` and `onnx/model.onnx` (or `model.onnx`) loads as it is: `config.json`,
 * `modules.json`, `sentence_bert_config.json`, the pooling module's `config.json` and
 * `config_sentence_transformers.json` (prompts) say the rest. Downloads get a `sutra-model.json`
 * written beside the files (with the sha256 of every file); a folder a user copied in is
 * described on the fly, without file hashes.
 */

/** The files of a sentence-transformers folder the service reads (the ONNX file aside). */
export const SENTENCE_TRANSFORMERS_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "config.json",
  "modules.json",
  "sentence_bert_config.json",
  "config_sentence_transformers.json",
] as const;

/** Where the fp32 ONNX file may sit, in order of preference. */
export const ONNX_CANDIDATES = ["onnx/model.onnx", "model.onnx"] as const;

/** Model types that are decoders: position ids from the mask, last-token pooling, left padding. */
const DECODER_MODEL_TYPES = new Set(["qwen2", "qwen3", "llama", "mistral", "gemma", "gemma2", "gemma3_text", "phi3"]);

type Json = Record<string, unknown>;

async function readJsonValue(dir: string, file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(join(dir, file), "utf8")) as unknown;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`${file} is not valid JSON`, { cause: error });
  }
}

async function readJson(dir: string, file: string): Promise<Json | undefined> {
  const parsed = await readJsonValue(dir, file);
  return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Json) : undefined;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** The fp32 ONNX file of a folder (relative), or undefined when it has none. */
export async function findOnnxFile(dir: string): Promise<string | undefined> {
  for (const candidate of ONNX_CANDIDATES) if (await exists(join(dir, candidate))) return candidate;
  return undefined;
}

/** True when `dir` looks like a sentence-transformers folder with ONNX weights. */
export async function isSentenceTransformersFolder(dir: string): Promise<boolean> {
  return (await exists(join(dir, "tokenizer.json"))) && (await findOnnxFile(dir)) !== undefined;
}

/** The folder name a hub id is stored under: `/` becomes `--` (as the hub's own cache does). */
export function folderNameOf(modelId: string): string {
  return modelId.replaceAll("/", "--");
}

/** The model id a folder name stands for (inverse of {@link folderNameOf}). */
export function modelIdOfFolder(name: string): string {
  return name.replaceAll("--", "/");
}

function poolingOf(config: Json | undefined, decoder: boolean): Pooling {
  if (config === undefined) return decoder ? "last-token" : "mean";
  if (config.pooling_mode_lasttoken === true) return "last-token";
  if (config.pooling_mode_cls_token === true) return "cls";
  if (config.pooling_mode_mean_tokens === true) return "mean";
  const modes = Object.entries(config).filter(([key, value]) => key.startsWith("pooling_mode_") && value === true).map(([key]) => key);
  throw new Error(`unsupported pooling ${modes.join(", ") || "(none set)"}: mean, cls and last-token are supported`);
}

const positiveInteger = (value: unknown): number | undefined =>
  typeof value === "number" && Number.isInteger(value) && value > 0 && value < 1_000_000 ? value : undefined;

/** Options of {@link describeSentenceTransformersFolder}. */
export interface DescribeOptions {
  /** Model id; default the folder name read back with {@link modelIdOfFolder}. */
  id?: string;
  /** sha256 of every file, when known (downloads); default none (nothing to verify). */
  files?: Record<string, string>;
  hub?: ModelManifest["hub"];
}

/**
 * Builds the manifest of a sentence-transformers folder. Pooling from the Pooling module's
 * config (mean, cls, last-token; anything else is refused), normalisation from a Normalize
 * module, the window from `sentence_bert_config.json` `max_seq_length` capped by the position
 * table, prompts from `config_sentence_transformers.json`; catalog facts (quality score,
 * licence, Matryoshka sizes, task presets) when the id is in the catalog. Decoder models
 * (Qwen3-style) take `position_ids` and pad left unless the tokenizer config says otherwise.
 * Throws with a readable reason for a folder it cannot serve (Dense modules, no ONNX file).
 */
export async function describeSentenceTransformersFolder(dir: string, options: DescribeOptions = {}): Promise<ModelManifest> {
  const name = dir.split(sep).filter(Boolean).at(-1) ?? dir;
  const id = options.id ?? modelIdOfFolder(name);
  const onnxFile = await findOnnxFile(dir);
  if (onnxFile === undefined) throw new Error("no onnx/model.onnx or model.onnx in the folder");
  if (!(await exists(join(dir, "tokenizer.json")))) throw new Error("no tokenizer.json in the folder");
  const config = (await readJson(dir, "config.json")) ?? {};
  const modules = await readJsonValue(dir, "modules.json");
  const moduleList = Array.isArray(modules) ? (modules as Array<{ path?: string; type?: string }>) : [];
  const dense = moduleList.find((module) => module.type?.endsWith(".Dense"));
  if (dense) throw new Error(`module ${dense.path ?? "Dense"} (a Dense projection after pooling) is not supported`);
  const poolingPath = moduleList.find((module) => module.type?.endsWith(".Pooling"))?.path ?? "1_Pooling";
  const poolingConfig = await readJson(dir, posix.join(poolingPath, "config.json"));
  const normalize = moduleList.length > 0 ? moduleList.some((module) => module.type?.endsWith(".Normalize")) : true;
  const bertConfig = await readJson(dir, "sentence_bert_config.json");
  const tokenizerConfig = await readJson(dir, "tokenizer_config.json");
  const stConfig = await readJson(dir, "config_sentence_transformers.json");
  const modelType = typeof config.model_type === "string" ? config.model_type : "";
  const decoder = DECODER_MODEL_TYPES.has(modelType) || poolingConfig?.pooling_mode_lasttoken === true;
  const pooling = poolingOf(poolingConfig, decoder);
  const catalog = catalogEntry(id);

  const positions = positiveInteger(config.max_position_embeddings);
  const window = positiveInteger(bertConfig?.max_seq_length) ?? positiveInteger(tokenizerConfig?.model_max_length) ?? positions ?? 512;
  const maxTokens = positions !== undefined && !decoder ? Math.min(window, positions) : window;
  const dimensions = positiveInteger(poolingConfig?.word_embedding_dimension) ?? positiveInteger(config.hidden_size);
  if (dimensions === undefined) throw new Error("neither 1_Pooling/config.json nor config.json gives the embedding size");
  const declaredSide = tokenizerConfig?.padding_side;
  const paddingSide = declaredSide === "left" || declaredSide === "right" ? declaredSide : pooling === "last-token" ? "left" : "right";
  const prompts = Object.fromEntries(
    Object.entries((stConfig?.prompts as Json | undefined) ?? {}).filter((entry): entry is [string, string] => typeof entry[1] === "string"),
  );
  return {
    id,
    name: catalog?.name ?? id.split("/").at(-1) ?? id,
    dimensions,
    maxTokens,
    pooling,
    normalize,
    matryoshkaDimensions: catalog?.matryoshkaDimensions.filter((size) => size < dimensions) ?? [],
    prompts,
    license: catalog?.license ?? "unknown",
    source: options.hub ? `${options.hub.endpoint}/${options.hub.repo}@${options.hub.commit}` : `folder ${name}`,
    qualityScore: catalog?.qualityScore,
    inputs: decoder ? ["input_ids", "attention_mask", "position_ids"] : ["input_ids", "attention_mask", "token_type_ids"],
    output: "last_hidden_state",
    tokenizer: "tokenizer.json",
    paddingSide,
    variants: { fp32: { file: onnxFile } },
    files: options.files ?? {},
    ...(catalog?.taskPresets ? { taskPresets: catalog.taskPresets } : {}),
    ...(options.hub ? { hub: options.hub } : {}),
    layout: "sentence-transformers",
  };
}

/** Every file under `dir` (relative, `/`-separated), dot files and the manifest excluded. */
export async function listFolderFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && !entry.name.startsWith("."))
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).split(sep).join("/"))
    .filter((file) => file !== MANIFEST_FILE)
    .sort();
}

/**
 * sha256 of every file of the folder (the manifest excluded), for the manifest's `files`. `known`
 * holds digests already verified (a download's LFS files), which are not read again.
 */
export async function hashFolder(dir: string, known: Record<string, string> = {}): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const file of await listFolderFiles(dir)) files[file] = known[file] ?? await sha256File(join(dir, file));
  return files;
}

/** Writes `sutra-model.json` into `dir` through a temporary file and a rename. */
export async function writeManifest(dir: string, manifest: ModelManifest): Promise<void> {
  const temporary = join(dir, `.${MANIFEST_FILE}.tmp`);
  await writeFile(temporary, `${JSON.stringify(manifest, null, 2)}\n`);
  await rename(temporary, join(dir, MANIFEST_FILE));
}
