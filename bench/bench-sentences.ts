import { readFileSync } from "node:fs";

/** Size of the benchmark batch (issue 2: a batch of 32 mixed-length sentences). */
export const BATCH_SIZE = 32;

/**
 * The benchmark batch: 32 non-empty sentences spread evenly over the fixture's
 * length-ordered list, from one token to far past the 128-token window.
 */
export function mixedBatch(): string[] {
  const sentences = (JSON.parse(readFileSync(new URL("../test/fixtures/use-lite-sentences.json", import.meta.url), "utf8")) as string[])
    .filter((text) => text.trim().length > 0)
    .sort((a, b) => a.length - b.length);
  return Array.from({ length: BATCH_SIZE }, (_, index) => sentences[Math.floor((index * (sentences.length - 1)) / (BATCH_SIZE - 1))]);
}

/** Median of a list of numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
