import { EmbedderError } from "../domain/errors.js";
import type { ModelManifest } from "../models/manifest.js";
import { applyInstruction, DEFAULT_TASK_PRESETS } from "../models/task-presets.js";

/**
 * Applies the request's prompt to every text: `prompt_name` prepends the model's
 * named prompt (sentence-transformers `prompts`) or, when it names a task preset
 * (`general`, `reviews`, `technical`, `troubleshooting`, `comparisons`, or the
 * model's own), applies that preset's instruction (`general`: none); `instruction` uses the Qwen3
 * format `Instruct: {instruction}\nQuery:{text}` byte for byte. Both at once, or
 * an unknown prompt name, is INVALID_ARGUMENT.
 */
export function prepareTexts(texts: string[], manifest: ModelManifest, promptName?: string, instruction?: string): string[] {
  if (promptName && instruction) {
    throw new EmbedderError("INVALID_ARGUMENT", "send either prompt_name or instruction, not both", {
      details: { field: "prompt_name" },
    });
  }
  if (promptName) {
    const prompt = Object.hasOwn(manifest.prompts, promptName) ? manifest.prompts[promptName] : undefined;
    if (prompt !== undefined) return texts.map((text) => prompt + text);
    const presets = manifest.taskPresets ?? DEFAULT_TASK_PRESETS;
    const preset = Object.hasOwn(presets, promptName) ? presets[promptName] : undefined;
    if (preset !== undefined) return applyInstruction(preset, texts);
    throw new EmbedderError("INVALID_ARGUMENT", `model ${manifest.id} has no prompt or task preset "${promptName}"`, {
      details: { field: "prompt_name", supported: [...Object.keys(manifest.prompts), ...Object.keys(presets)] },
    });
  }
  return applyInstruction(instruction, texts);
}
