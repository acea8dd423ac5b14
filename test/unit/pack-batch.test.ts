import { describe, expect, it } from "vitest";
import { createBatcher, type Batch, type BatchOutput } from "../../src/batching/create-batcher.js";
import { packBatch, paddedCost, type PackableEntry } from "../../src/batching/pack-batch.js";

let orders = 0;
const entry = (length: number, request = { cap: 64 }, key = "m"): PackableEntry => ({ item: { key }, length, order: orders++, request });
const limits = { maxBatchSize: 8, tokenBudget: 4096 };
const wastedShare = (batch: PackableEntry[]) => {
  const longest = Math.max(...batch.map((item) => item.length));
  return 1 - batch.reduce((sum, item) => sum + item.length, 0) / (longest * batch.length);
};

describe("packBatch", () => {
  it("cuts everything waiting by length: batches of near lengths, never the oldest's neighbours with a long one", () => {
    const lengths = [12, 200, 11, 13, 190, 12, 14, 205, 10, 12, 11, 13, 15, 198];
    let queue = lengths.map((length) => entry(length));
    const batches: PackableEntry[][] = [];
    while (queue.length > 0) {
      const batch = packBatch(queue, limits);
      batches.push(batch);
      queue = queue.filter((item) => !batch.includes(item));
    }
    for (const batch of batches) {
      expect(batch.map((item) => item.length)).toEqual([...batch.map((item) => item.length)].sort((a, b) => a - b));
      expect(wastedShare(batch)).toBeLessThan(0.25);
    }
    expect(batches).toHaveLength(3);
  });

  it("keeps the long items together once the short ones are gone, and never passes the budget or the size", () => {
    const queue = [200, 190, 205, 198, 30].map((length) => entry(length));
    const batch = packBatch(queue, { maxBatchSize: 8, tokenBudget: 820 });
    expect(batch.map((item) => item.length)).toEqual([190, 198, 200, 205]);
    expect(205 * batch.length).toBeLessThanOrEqual(820);
  });

  it("with forceOldest, runs the window that holds the oldest item, however poor", () => {
    const lonely = entry(30);
    const queue = [lonely, ...Array.from({ length: 16 }, () => entry(10))];
    expect(packBatch(queue, limits)).not.toContain(lonely);
    const forced = packBatch(queue, limits, true);
    expect(forced).toContain(lonely);
    expect(forced.length).toBeLessThanOrEqual(limits.maxBatchSize);
  });

  it("never mixes keys and keeps each request within its cap (the rest wait)", () => {
    const capped = { cap: 2 };
    const queue = [entry(10, capped), entry(10, capped), entry(10, capped), entry(11), entry(10, { cap: 64 }, "other")];
    const batch = packBatch(queue, limits);
    expect(new Set(batch.map((item) => item.item.key)).size).toBe(1);
    expect(batch.filter((item) => item.request === capped)).toHaveLength(2);
  });

  it("weighs padding by attention's square: long padding costs more than its token count", () => {
    expect(paddedCost(256) / paddedCost(16)).toBeGreaterThan(256 / 16);
  });

  it("picks from 8,192 waiting items in a few milliseconds", () => {
    const queue = Array.from({ length: 8192 }, (_, index) => entry(5 + ((index * 7919) % 250)));
    const started = performance.now();
    for (let round = 0; round < 10; round++) packBatch(queue, { maxBatchSize: 64, tokenBudget: 8192 });
    const ms = (performance.now() - started) / 10;
    console.log(`packBatch over 8,192 waiting items: ${ms.toFixed(2)} ms`);
    expect(ms).toBeLessThan(50);
  });
});

describe("the batcher never starves an item", () => {
  const item = (length: number) => ({ ids: new Array<number>(length).fill(1), key: "m" });
  it("runs the oldest item by the batch after it was passed over 2 x maxInFlight times", async () => {
    const batches: Array<{ batch: Batch<ReturnType<typeof item>, string>; release: () => void }> = [];
    const run = (batch: Batch<ReturnType<typeof item>, string>) => new Promise<BatchOutput>((resolve) => {
      batches.push({ batch, release: () => resolve({ vectors: batch.items.map(() => new Float32Array(1)), inferenceMs: 1, executionProvider: "cpu" }) });
    });
    const batcher = createBatcher({ run, maxInFlight: 1, maxBatchSize: 16, tokenBudget: 4096, maxQueue: 1000 });
    const flush = () => new Promise((resolve) => setImmediate(resolve));
    const blocker = batcher.submit([item(10)], { context: "blocker" });
    const lonely = batcher.submit([item(30)], { context: "lonely" });
    const shorts: Array<Promise<unknown>> = [];
    for (let round = 0; round < 4; round++) {
      shorts.push(batcher.submit(Array.from({ length: 16 }, () => item(10)), { context: `shorts-${round}` }));
      await flush();
      batches[round].release();
      await flush();
    }
    const contexts = batches.map(({ batch }) => batch.items.some((queued) => queued.ids.length === 30) ? "lonely" : batch.context);
    expect(contexts.slice(0, 4)).toEqual(["blocker", "shorts-0", "shorts-1", "lonely"]);
    for (const pending of batches.slice(4)) pending.release();
    for (let round = 0; round < 4; round++) {
      await flush();
      for (const pending of batches) pending.release();
    }
    await Promise.all([blocker, lonely, ...shorts]);
  });
});
