/**
 * Named task presets, verbatim from the task table of the Qwen3-Embedding guide: a `prompt_name`
 * that names one applies its instruction in the Qwen3 format `Instruct: {instruction}\nQuery:{text}`,
 * exactly as an explicit `instruction` would; `general` (`null`) is the baseline with no
 * instruction, so its texts are embedded as sent. A model's manifest may declare its own
 * (`taskPresets`); these are the defaults for every other model. The same preset (or instruction)
 * must be used when indexing and when searching, or the vectors live in different spaces. Looked up
 * by a client's `prompt_name`, so the table has no prototype: `constructor` or `__proto__` names
 * no preset.
 */
export const DEFAULT_TASK_PRESETS: Readonly<Record<string, string | null>> = Object.freeze(Object.assign(Object.create(null), {
  general: null,
  reviews: "Retrieve comprehensive review articles and surveys that provide broad overviews of this topic",
  technical: "Retrieve technical documentation and implementation details related to this topic",
  troubleshooting: "Retrieve debugging guides, error solutions, and troubleshooting resources for this issue",
  comparisons: "Retrieve comparative analyses and benchmark studies related to this topic",
}));

/** The Qwen3-Embedding instruction format, byte for byte. */
function formatInstruction(instruction: string, text: string): string {
  return `Instruct: ${instruction}\nQuery:${text}`;
}

/** `texts` in the instruction format of {@link formatInstruction}, or as they are when there is no instruction (`null` or ""). */
export function applyInstruction(instruction: string | null | undefined, texts: string[]): string[] {
  return instruction ? texts.map((text) => formatInstruction(instruction, text)) : texts;
}
