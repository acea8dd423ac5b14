/** OpenAI's embedding model names: by default they alias the server's default model. */
export const OPENAI_MODEL_NAMES = ["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"] as const;

/**
 * The model aliases of `SUTRA_MODEL_ALIASES` (`alias=model,...`, whitespace
 * around items ignored) over the defaults: OpenAI's model names alias
 * `defaultModel`, so OpenAI clients work unchanged; an alias given in the
 * setting wins. Throws on an item without `=` or with an empty side. The
 * object has no prototype, so only the aliases themselves are its keys.
 */
export function parseModelAliases(text: string, defaultModel: string): Record<string, string> {
  const aliases: Record<string, string> = Object.assign(Object.create(null), Object.fromEntries(OPENAI_MODEL_NAMES.map((name) => [name, defaultModel])));
  for (const item of text.split(",")) {
    if (item.trim() === "") continue;
    const [alias, model, ...rest] = item.split("=").map((part) => part.trim());
    if (!alias || !model || rest.length > 0) throw new Error(`SUTRA_MODEL_ALIASES: "${item.trim()}" is not alias=model`);
    aliases[alias] = model;
  }
  return aliases;
}
