import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEmbeddingCache, embeddingCacheKey, type EmbeddingCacheKey } from "../../src/cache/embedding-cache.js";
import { describeSentenceTransformersFolder, folderNameOf, modelIdOfFolder } from "../../src/models/hf-folder.js";
import { isSafeRelativePath, planDownload, type HubSibling } from "../../src/models/hub/hub-listing.js";
import type { ModelManifest } from "../../src/models/manifest.js";
import { createModelRegistry } from "../../src/models/registry.js";
import { DEFAULT_TASK_PRESETS } from "../../src/models/task-presets.js";
import { writeTinyBertModel, writeTinyDecoderModel } from "../support/tiny-models.js";
import { prepareTexts } from "../../src/engine/prepare-texts.js";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "sutra-models-unit-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("hub listing", () => {
  it("accepts plain relative names and refuses every way out of the folder", () => {
    for (const name of ["model.onnx", "onnx/model.onnx", "1_Pooling/config.json", "a/b/c.json"]) expect(isSafeRelativePath(name), name).toBe(true);
    for (const name of ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/./b", "a\\..\\b", "", ".hidden", "a/.git/config", "a\u0000b", "x/.."]) {
      expect(isSafeRelativePath(name), JSON.stringify(name)).toBe(false);
    }
  });

  const sibling = (rfilename: string, extra: Partial<HubSibling> = {}): HubSibling => ({ rfilename, size: 10, blobId: "ab".repeat(20), ...extra });

  it("plans only the files a model needs, with the check each must pass", () => {
    const plan = planDownload({
      sha: "c".repeat(40),
      siblings: [
        sibling("onnx/model.onnx", { lfs: { sha256: "AA".repeat(32), size: 1000 } }),
        sibling("onnx/model_quantized.onnx", { lfs: { sha256: "bb".repeat(32), size: 500 } }),
        sibling("model.safetensors", { lfs: { sha256: "cc".repeat(32), size: 900 } }),
        sibling("tokenizer.json"),
        sibling("config.json"),
        sibling("modules.json"),
        sibling("1_Pooling/config.json"),
        sibling("config_sentence_transformers.json"),
        sibling("README.md"),
      ],
    });
    expect(plan.map((file) => file.path).sort()).toEqual(["1_Pooling/config.json", "config.json", "config_sentence_transformers.json", "modules.json", "onnx/model.onnx", "tokenizer.json"]);
    expect(plan.find((file) => file.path === "onnx/model.onnx")).toEqual({ path: "onnx/model.onnx", size: 1000, check: { kind: "sha256", digest: "aa".repeat(32) } });
    expect(plan.find((file) => file.path === "tokenizer.json")?.check.kind).toBe("git-blob-sha1");
  });

  it("refuses a listing with an escaping name, without ONNX weights, or without checksums", () => {
    const good = [sibling("onnx/model.onnx", { lfs: { sha256: "aa".repeat(32), size: 1 } }), sibling("tokenizer.json")];
    expect(() => planDownload({ sha: "x", siblings: [...good, sibling("../../escape.json")] })).toThrow(/escape the model folder/);
    expect(() => planDownload({ sha: "x", siblings: [sibling("tokenizer.json"), sibling("model.safetensors")] })).toThrow(/no ONNX weights/);
    expect(() => planDownload({ sha: "x", siblings: [good[0]] })).toThrow(/no tokenizer.json/);
    expect(() => planDownload({ sha: "x", siblings: [good[0], { rfilename: "tokenizer.json", size: 3 }] })).toThrow(/no checksum/);
  });
});

describe("sentence-transformers folders", () => {
  it("map hub ids to folder names and back", () => {
    expect(folderNameOf("BAAI/bge-small-en-v1.5")).toBe("BAAI--bge-small-en-v1.5");
    expect(modelIdOfFolder("BAAI--bge-small-en-v1.5")).toBe("BAAI/bge-small-en-v1.5");
  });

  it("describe an encoder and a decoder from their own config files", async () => {
    await writeTinyBertModel(join(root, "org--bert"), { pooling: "cls" });
    const bert = await describeSentenceTransformersFolder(join(root, "org--bert"));
    expect(bert).toMatchObject({
      id: "org/bert", dimensions: 32, maxTokens: 128, pooling: "cls", normalize: true, paddingSide: "right",
      prompts: { query: "query: ", document: "" }, variants: { fp32: { file: "onnx/model.onnx" } }, output: "last_hidden_state",
      inputs: ["input_ids", "attention_mask", "token_type_ids"], layout: "sentence-transformers",
    });
    await writeTinyDecoderModel(join(root, "org--decoder"));
    const decoder = await describeSentenceTransformersFolder(join(root, "org--decoder"));
    expect(decoder).toMatchObject({ pooling: "last-token", paddingSide: "left", inputs: ["input_ids", "attention_mask", "position_ids"] });
  });

  it("refuse a Dense module and max pooling with a readable reason", async () => {
    const dir = join(root, "org--dense");
    await writeTinyBertModel(dir);
    await writeFile(join(dir, "modules.json"), JSON.stringify([
      { idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
      { idx: 1, name: "1", path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
      { idx: 2, name: "2", path: "2_Dense", type: "sentence_transformers.models.Dense" },
    ]));
    await expect(describeSentenceTransformersFolder(dir)).rejects.toThrow(/2_Dense.*not supported/);
    const max = join(root, "org--max");
    await writeTinyBertModel(max);
    await writeFile(join(max, "1_Pooling/config.json"), JSON.stringify({ word_embedding_dimension: 32, pooling_mode_max_tokens: true }));
    await expect(describeSentenceTransformersFolder(max)).rejects.toThrow(/unsupported pooling pooling_mode_max_tokens/);
  });
});

describe("registry", () => {
  it("lists catalog models as available, folders as ready, and names an unservable folder in failures", async () => {
    const dir = join(root, "registry");
    await writeTinyBertModel(join(dir, "org--served"));
    await writeTinyBertModel(join(dir, "org--broken"));
    await writeFile(join(dir, "org--broken", "1_Pooling/config.json"), JSON.stringify({ pooling_mode_max_tokens: true }));
    const registry = createModelRegistry({ modelDirs: [dir], defaultModelId: "org/served" });
    await registry.start();
    const models = new Map(registry.describe().map((model) => [model.id, model]));
    expect(models.get("org/served")).toMatchObject({ status: "loaded", dimensions: 32 });
    expect(models.get("BAAI/bge-small-en-v1.5")).toMatchObject({ status: "available", dimensions: 384, license: "mit", pooling: "cls" });
    expect(models.get("nomic-ai/nomic-embed-text-v1.5")?.matryoshkaDimensions).toContain(256);
    expect(registry.failures().map((failure) => failure.id)).toEqual(["org--broken"]);
    await expect(registry.resolve("BAAI/bge-small-en-v1.5")).rejects.toMatchObject({ reason: "MODEL_NOT_READY", details: { status: "available" } });
    await expect(registry.resolve("nobody/nothing")).rejects.toMatchObject({ reason: "UNKNOWN_MODEL" });
    await expect(registry.download("BAAI/bge-small-en-v1.5")).rejects.toMatchObject({ reason: "NOT_IMPLEMENTED" });
  });

  it("finds a folder copied in after start on its first request by name", async () => {
    const dir = join(root, "rescan");
    await writeTinyBertModel(join(dir, "org--first"));
    const registry = createModelRegistry({ modelDirs: [dir], defaultModelId: "org/first", rescanIntervalMs: 0 });
    await registry.start();
    await expect(registry.resolve("org/second")).rejects.toMatchObject({ reason: "UNKNOWN_MODEL" });
    await writeTinyBertModel(join(dir, "org--second"), { pooling: "cls" });
    const choice = await registry.resolve("org/second");
    expect(choice.model.manifest.pooling).toBe("cls");
    choice.release?.();
    expect((await registry.describeOne("org/second")).status).toBe("loaded");
  });

  it("refuses a model off the allowlist with FORBIDDEN", async () => {
    const registry = createModelRegistry({ modelDirs: [], defaultModelId: "x", hub: { endpoint: "http://127.0.0.1:9", allowlist: ["BAAI/*", "intfloat/e5-small-v2"] } });
    await registry.start();
    await expect(registry.download("thenlper/gte-small")).rejects.toMatchObject({ reason: "FORBIDDEN" });
    await expect(registry.download("a/../b")).rejects.toMatchObject({ reason: "INVALID_ARGUMENT" });
  });
});

describe("prompts and instructions", () => {
  const manifest = { id: "m", prompts: { query: "query: " }, taskPresets: undefined } as unknown as ModelManifest;

  it("applies an instruction in the Qwen3 format byte for byte", () => {
    expect(prepareTexts(["what is rain?", ""], manifest, undefined, "Given a question, retrieve answers")).toEqual([
      "Instruct: Given a question, retrieve answers\nQuery:what is rain?",
      "Instruct: Given a question, retrieve answers\nQuery:",
    ]);
  });

  it("prompt_name picks the model's prompt first, then a task preset; unknown or both is INVALID_ARGUMENT", () => {
    expect(prepareTexts(["x"], manifest, "query")).toEqual(["query: x"]);
    expect(prepareTexts(["x"], manifest, "troubleshooting")).toEqual([`Instruct: ${DEFAULT_TASK_PRESETS.troubleshooting}\nQuery:x`]);
    expect(Object.keys(DEFAULT_TASK_PRESETS)).toEqual(["general", "reviews", "technical", "troubleshooting", "comparisons"]);
    expect(() => prepareTexts(["x"], manifest, "toString")).toThrow(/no prompt or task preset/);
    expect(() => prepareTexts(["x"], manifest, "query", "both")).toThrow(/either prompt_name or instruction/);
  });
});

describe("embedding cache", () => {
  const key = (overrides: Partial<EmbeddingCacheKey> = {}) => embeddingCacheKey({
    modelId: "m", modelFile: "/m/model.onnx", modelFileSha256: "aa", precision: "fp32", executionProviders: ["cpu"],
    dimensions: 0, normalize: true, truncate: "end", text: "hello", ...overrides,
  });
  const entry = (value: number) => ({ vector: Float32Array.of(value), tokens: 3, truncated: false, executionProvider: "cpu" });

  it("keys on every field that changes a vector, unambiguously", () => {
    const base = key();
    for (const overrides of [
      { modelId: "n" }, { modelFileSha256: "bb" }, { precision: "int8" }, { executionProviders: ["cuda", "cpu"] }, { dimensions: 64 },
      { normalize: false }, { truncate: "start" }, { text: "hello " },
    ]) expect(key(overrides), JSON.stringify(overrides)).not.toBe(base);
    expect(key({ modelId: "ab", modelFile: "c" })).not.toBe(key({ modelId: "a", modelFile: "bc" }));
    expect(key()).toBe(base);
  });

  it("evicts the least recently used beyond max entries and expires entries after the TTL", () => {
    let now = 0;
    const cache = createEmbeddingCache({ maxEntries: 2, ttlSeconds: 10, now: () => now });
    cache.set("a", entry(1));
    cache.set("b", entry(2));
    expect(cache.get("a")?.vector[0]).toBe(1);
    cache.set("c", entry(3));
    expect(cache.get("b")).toBeUndefined();
    expect(cache.get("a")?.vector[0]).toBe(1);
    now = 10_001;
    expect(cache.get("a")).toBeUndefined();
    expect(cache.stats()).toEqual({ size: 1, maxSize: 2, ttlSeconds: 10, hits: 2, misses: 2 });
  });

  it("keeps its own copy of a vector", () => {
    const cache = createEmbeddingCache({ maxEntries: 4, ttlSeconds: 0 });
    const vector = Float32Array.of(1, 2);
    cache.set("k", { ...entry(0), vector });
    vector[0] = 99;
    expect(Array.from(cache.get("k")?.vector ?? [])).toEqual([1, 2]);
  });
});
