import { readFileSync } from "node:fs";

/** Size of the model benchmark's batch (issue 2: a batch of 32 mixed-length sentences). */
export const BATCH_SIZE = 32;

/**
 * The model benchmark's batch: 32 non-empty sentences spread evenly over the
 * fixture's length-ordered list, from one token to far past the 128-token window.
 */
export function mixedBatch(): string[] {
  const sentences = (JSON.parse(readFileSync(new URL("../test/fixtures/use-lite-sentences.json", import.meta.url), "utf8")) as string[])
    .filter((text) => text.trim().length > 0)
    .sort((a, b) => a.length - b.length);
  return Array.from({ length: BATCH_SIZE }, (_, index) => sentences[Math.floor((index * (sentences.length - 1)) / (BATCH_SIZE - 1))]);
}
