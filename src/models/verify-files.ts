import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { EmbedderError } from "../domain/errors.js";
import { MANIFEST_FILE, type ModelManifest } from "./manifest.js";

/** sha256 (hex) of a file, streamed so large weights do not sit in memory twice. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * Reads a model folder's manifest and checks the sha256 of every file it lists.
 * Throws MODEL_NOT_READY naming the model and the file when the manifest is
 * unreadable, a file is missing, or a file's content does not match.
 */
export async function readVerifiedManifest(dir: string): Promise<ModelManifest> {
  let manifest: ModelManifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), "utf8")) as ModelManifest;
  } catch (error) {
    throw new EmbedderError("MODEL_NOT_READY", `model folder has no readable ${MANIFEST_FILE}`, {
      details: { file: MANIFEST_FILE },
      cause: error,
    });
  }
  for (const [file, expected] of Object.entries(manifest.files)) {
    let actual: string;
    try {
      actual = await sha256File(join(dir, file));
    } catch (error) {
      throw new EmbedderError("MODEL_NOT_READY", `model ${manifest.id}: file ${file} is missing`, {
        details: { model: manifest.id, file },
        cause: error,
      });
    }
    if (actual !== expected) {
      throw new EmbedderError("MODEL_NOT_READY", `model ${manifest.id}: file ${file} is corrupted (sha256 mismatch)`, {
        details: { model: manifest.id, file, expected_sha256: expected, actual_sha256: actual },
      });
    }
  }
  return manifest;
}
