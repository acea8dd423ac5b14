import type { Tiktoken } from "js-tiktoken/lite";
import { EmbedderError } from "../../domain/errors.js";

/** OpenAI's cl100k_base tokenizer with a lookup of the ids it can decode. */
interface Cl100k {
  tiktoken: Tiktoken;
  /** `known[id]` is 1 when `id` is a rank or a special token of cl100k_base. */
  known: Uint8Array;
}

let loading: Promise<Cl100k> | undefined;

/**
 * Loads js-tiktoken's bundled cl100k_base ranks (nothing is fetched) and marks
 * the ids it can decode: cl100k_base numbers its special tokens after its
 * ranks and leaves gaps (100256, 100261..100275), so every id up to the last
 * special token is tried once. Building the tokenizer takes about a second of
 * CPU, hence the dynamic imports: only the first token-array request pays it.
 */
async function loadCl100k(): Promise<Cl100k> {
  const [{ Tiktoken }, { default: ranks }] = await Promise.all([import("js-tiktoken/lite"), import("js-tiktoken/ranks/cl100k_base")]);
  const tiktoken = new Tiktoken(ranks);
  const known = new Uint8Array(Math.max(...Object.values(ranks.special_tokens)) + 1);
  for (let id = 0; id < known.length; id++) known[id] = tiktoken.decode([id]) === "" ? 0 : 1;
  return { tiktoken, known };
}

function cl100k(): Promise<Cl100k> {
  loading ??= loadCl100k().catch((error: unknown) => {
    loading = undefined;
    throw error;
  });
  return loading;
}

/** A refused item as the error names it: a number as itself, anything else by its kind (an item may be nested thousands deep). */
function describe(item: unknown): string {
  if (typeof item === "number" || typeof item === "boolean" || item === null) return String(item);
  if (Array.isArray(item)) return "an array";
  return typeof item === "string" ? "a string" : "an object";
}

/**
 * Decodes the OpenAI dialect's token arrays, which clients (LangChain, the
 * OpenAI SDKs) send as OpenAI's cl100k_base ids, back to the texts they were
 * encoded from, so they are embedded like any text, with the model's own
 * tokenizer. Special tokens decode to their text (`<|endoftext|>`); an array
 * cut inside a character (LangChain splits long texts into chunks of ids)
 * decodes the partial bytes to U+FFFD, as tiktoken does. Every item must be an
 * id cl100k_base can decode, else INVALID_ARGUMENT naming `input[index][position]`
 * with details `{field: "input", index, position}`. The ranks load on the
 * first call (see `loadCl100k`).
 */
export async function decodeCl100kTokens(arrays: ReadonlyArray<readonly unknown[]>): Promise<string[]> {
  const { tiktoken, known } = await cl100k();
  return arrays.map((ids, index) => {
    const position = ids.findIndex((id) => !(typeof id === "number" && Number.isInteger(id) && id >= 0 && known[id] === 1));
    if (position !== -1) {
      throw new EmbedderError("INVALID_ARGUMENT", `input[${index}][${position}] = ${describe(ids[position])} is not a cl100k_base token id`, {
        details: { field: "input", index, position },
      });
    }
    return tiktoken.decode(ids as number[]);
  });
}
