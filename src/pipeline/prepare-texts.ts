import { EmbedderError } from "../domain/errors.js";
import type { ModelManifest } from "../models/manifest.js";

/**
 * Applies the request's prompt to every text: `prompt_name` prepends the model's
 * named prompt (sentence-transformers `prompts`); `instruction` uses the Qwen3
 * format `Instruct: {instruction}\nQuery:{text}`. Both at once, or an unknown
 * prompt name, is INVALID_ARGUMENT.
 */
export function prepareTexts(texts: string[], manifest: ModelManifest, promptName?: string, instruction?: string): string[] {
  if (promptName && instruction) {
    throw new EmbedderError("INVALID_ARGUMENT", "send either prompt_name or instruction, not both", {
      details: { field: "prompt_name" },
    });
  }
  if (promptName) {
    const prompt = manifest.prompts[promptName];
    if (prompt === undefined) {
      throw new EmbedderError("INVALID_ARGUMENT", `model ${manifest.id} has no prompt "${promptName}"`, {
        details: { field: "prompt_name", supported: Object.keys(manifest.prompts) },
      });
    }
    return texts.map((text) => prompt + text);
  }
  if (instruction) return texts.map((text) => `Instruct: ${instruction}\nQuery:${text}`);
  return texts;
}
