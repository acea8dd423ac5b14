/**
 * Named task presets (the seed's `general`, `reviews`, `technical`, `troubleshooting`,
 * `comparisons`): a `prompt_name` that names one applies its instruction in the Qwen3 format
 * `Instruct: {instruction}\nQuery:{text}`, exactly as an explicit `instruction` would. A model's
 * manifest may declare its own (`taskPresets`); these are the defaults for every other model.
 * The same preset (or instruction) must be used when indexing and when searching, or the
 * vectors live in different spaces. Looked up by a client's `prompt_name`, so the table has no
 * prototype: `constructor` or `__proto__` names no preset.
 */
export const DEFAULT_TASK_PRESETS: Readonly<Record<string, string>> = Object.freeze(Object.assign(Object.create(null), {
  general: "Given a web search query, retrieve relevant passages that answer the query",
  reviews: "Given a product review, retrieve reviews that express similar opinions about the same product",
  technical: "Given a technical question, retrieve documentation passages that answer it",
  troubleshooting: "Given a description of a problem, retrieve passages that explain its cause and how to fix it",
  comparisons: "Given a request to compare items, retrieve passages that describe their differences and similarities",
}));

/** The Qwen3-Embedding instruction format, byte for byte. */
export function formatInstruction(instruction: string, text: string): string {
  return `Instruct: ${instruction}\nQuery:${text}`;
}
