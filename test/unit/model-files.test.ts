import { cpSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID } from "../../src/models/builtin.js";
import { readVerifiedManifest } from "../../src/models/verify-files.js";

const source = join(BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID);
const scratch = mkdtempSync(join(tmpdir(), "sutra-model-files-"));

function copyModel(name: string): string {
  const dir = join(scratch, name);
  cpSync(source, dir, { recursive: true });
  return dir;
}

describe("model folder verification", () => {
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it("accepts the built default model", async () => {
    const manifest = await readVerifiedManifest(copyModel("intact"));
    expect(manifest.id).toBe(DEFAULT_MODEL_ID);
    expect(Object.keys(manifest.files)).toContain("model.onnx");
  });

  it("names the model and the file when a file is corrupted", async () => {
    const dir = copyModel("corrupted");
    writeFileSync(join(dir, "tokenizer.json"), "{}");
    await expect(readVerifiedManifest(dir)).rejects.toMatchObject({
      reason: "MODEL_NOT_READY",
      message: `model ${DEFAULT_MODEL_ID}: file tokenizer.json is corrupted (sha256 mismatch)`,
      details: { model: DEFAULT_MODEL_ID, file: "tokenizer.json" },
    });
  });

  it("names the model and the file when a file is missing", async () => {
    const dir = copyModel("missing");
    unlinkSync(join(dir, "model.onnx"));
    await expect(readVerifiedManifest(dir)).rejects.toMatchObject({
      reason: "MODEL_NOT_READY",
      message: `model ${DEFAULT_MODEL_ID}: file model.onnx is missing`,
      details: { model: DEFAULT_MODEL_ID, file: "model.onnx" },
    });
  });

  it("says so when the manifest itself is missing", async () => {
    const dir = copyModel("no-manifest");
    unlinkSync(join(dir, "sutra-model.json"));
    await expect(readVerifiedManifest(dir)).rejects.toMatchObject({ reason: "MODEL_NOT_READY", details: { file: "sutra-model.json" } });
  });
});
