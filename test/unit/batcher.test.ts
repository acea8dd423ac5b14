import { describe, expect, it } from "vitest";
import { createBatcher, type Batch, type BatchOutput } from "../../src/batching/create-batcher.js";
import { EmbedderError } from "../../src/domain/errors.js";

const item = (length: number, key = "m") => ({ ids: Array.from({ length }, (_, index) => index + length * 1000), key });

/** A runner that holds every batch until released, recording what it saw. */
function controlledRunner() {
  const batches: Array<{ batch: Batch<ReturnType<typeof item>, string>; release: () => void; fail: (error: unknown) => void }> = [];
  const run = (batch: Batch<ReturnType<typeof item>, string>) =>
    new Promise<BatchOutput>((resolve, reject) => {
      batches.push({
        batch,
        release: () => resolve({
          vectors: batch.items.map((entry) => Float32Array.of(entry.ids.length, Number(entry.ids[0]))),
          inferenceMs: 1,
          executionProvider: "cpu",
        }),
        fail: reject,
      });
    });
  return { batches, run };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe("batcher", () => {
  it("packs items of several requests into one batch and returns each request's vectors in input order", async () => {
    const runner = controlledRunner();
    const batcher = createBatcher({ run: runner.run, maxInFlight: 1, maxBatchSize: 32, tokenBudget: 10_000, maxQueue: 100 });
    const first = batcher.submit([item(5)], { context: "a" });
    const second = batcher.submit([item(9), item(2), item(7)], { context: "b" });
    const third = batcher.submit([item(3)], { context: "c" });
    await flush();
    expect(runner.batches).toHaveLength(1);
    runner.batches[0].release();
    await flush();
    expect(runner.batches).toHaveLength(2);
    expect(runner.batches[1].batch.items.map((entry) => entry.ids.length)).toEqual([2, 3, 7, 9]);
    runner.batches[1].release();
    expect((await first).vectors.map((vector) => vector[0])).toEqual([5]);
    expect((await second).vectors.map((vector) => vector[0])).toEqual([9, 2, 7]);
    expect((await third).vectors.map((vector) => vector[0])).toEqual([3]);
    await batcher.idle();
  });

  it("keeps padded tokens within the budget and never mixes keys", async () => {
    const runner = controlledRunner();
    const batcher = createBatcher({ run: runner.run, maxInFlight: 1, maxBatchSize: 32, tokenBudget: 40, maxQueue: 100 });
    const blocker = batcher.submit([item(1, "other")], { context: "x" });
    const lengths = [10, 10, 10, 10, 10, 20];
    const pending = batcher.submit(lengths.map((length) => item(length)), { context: "y" });
    const otherKey = batcher.submit([item(10, "other")], { context: "z" });
    for (let round = 0; round < 6 && runner.batches.some((entry) => entry.batch.items.length > 0); round++) {
      await flush();
      for (const entry of runner.batches) entry.release();
    }
    await Promise.all([blocker, pending, otherKey]);
    for (const { batch } of runner.batches) {
      const longest = Math.max(...batch.items.map((entry) => entry.ids.length));
      expect(longest * batch.items.length).toBeLessThanOrEqual(40);
      expect(new Set(batch.items.map((entry) => entry.key)).size).toBe(1);
    }
  });

  it("refuses at once with OVERLOADED when the queue bound would be exceeded", async () => {
    const runner = controlledRunner();
    const batcher = createBatcher({ run: runner.run, maxInFlight: 1, maxBatchSize: 1, tokenBudget: 1000, maxQueue: 3 });
    const accepted = batcher.submit([item(1), item(1), item(1)], { context: "a" });
    await flush();
    expect(batcher.queueDepth()).toBe(2);
    const refused = batcher.submit([item(1), item(1)], { context: "b" });
    await expect(refused).rejects.toMatchObject({ reason: "OVERLOADED" });
    for (let round = 0; round < 3; round++) {
      runner.batches[round].release();
      await flush();
    }
    expect((await accepted).vectors).toHaveLength(3);
  });

  it("takes a request larger than the bound when nothing of its priority waits, and refuses others while it waits", async () => {
    const runner = controlledRunner();
    const batcher = createBatcher({ run: runner.run, maxInFlight: 1, maxBatchSize: 4, tokenBudget: 1000, maxQueue: 3 });
    const large = batcher.submit(Array.from({ length: 10 }, () => item(1)), { context: "large" });
    await flush();
    expect(batcher.queueDepth()).toBe(6);
    expect(() => batcher.checkRoom(1)).toThrow(expect.objectContaining({ reason: "OVERLOADED", retryAfterMs: 1000 }));
    await expect(batcher.submit([item(1)], { context: "small" })).rejects.toMatchObject({ reason: "OVERLOADED" });
    expect(() => batcher.checkRoom(50, "background")).not.toThrow();
    for (let round = 0; round < 3; round++) {
      runner.batches[round].release();
      await flush();
    }
    expect((await large).vectors).toHaveLength(10);
    expect(batcher.queueDepth()).toBe(0);
    const next = batcher.submit(Array.from({ length: 5 }, () => item(1)), { context: "next" });
    await flush();
    for (let round = 3; round < 5; round++) {
      runner.batches[round].release();
      await flush();
    }
    expect((await next).vectors).toHaveLength(5);
  });

  it("drops a cancelled request's waiting items without running them", async () => {
    const runner = controlledRunner();
    let dropped = 0;
    const batcher = createBatcher({
      run: runner.run, maxInFlight: 1, maxBatchSize: 1, tokenBudget: 1000, maxQueue: 100,
      onCancelled: (items) => { dropped += items; },
    });
    const busy = batcher.submit([item(4)], { context: "a" });
    const controller = new AbortController();
    const cancelled = batcher.submit([item(6), item(8)], { context: "b", signal: controller.signal });
    controller.abort();
    await expect(cancelled).rejects.toBeInstanceOf(EmbedderError);
    await expect(cancelled).rejects.toMatchObject({ reason: "CANCELLED" });
    expect(batcher.queueDepth()).toBe(0);
    expect(dropped).toBe(2);
    runner.batches[0].release();
    await busy;
    await batcher.idle();
    expect(runner.batches).toHaveLength(1);
  });

  it("fails the requests of a failed batch and serves the others", async () => {
    const runner = controlledRunner();
    const batcher = createBatcher({ run: runner.run, maxInFlight: 1, maxBatchSize: 1, tokenBudget: 1000, maxQueue: 100 });
    const doomed = batcher.submit([item(2)], { context: "a" });
    const fine = batcher.submit([item(3)], { context: "b" });
    await flush();
    runner.batches[0].fail(new EmbedderError("WORKER_FAILED", "worker died"));
    await expect(doomed).rejects.toMatchObject({ reason: "WORKER_FAILED" });
    await flush();
    runner.batches[1].release();
    expect((await fine).vectors).toHaveLength(1);
  });

  it("honours a request's batch size cap", async () => {
    const runner = controlledRunner();
    const batcher = createBatcher({ run: runner.run, maxInFlight: 1, maxBatchSize: 32, tokenBudget: 10_000, maxQueue: 100 });
    const blocker = batcher.submit([item(1, "other")], { context: "x" });
    const capped = batcher.submit([item(3), item(3), item(3), item(3), item(3)], { context: "y", batchSizeCap: 2 });
    for (let round = 0; round < 5; round++) {
      await flush();
      for (const entry of runner.batches) entry.release();
    }
    await Promise.all([blocker, capped]);
    const sizes = runner.batches.filter(({ batch }) => batch.key === "m").map(({ batch }) => batch.items.length);
    expect(sizes).toEqual([2, 2, 1]);
  });

  it("tells onItem of each item as its own batch finishes, before the submission settles", async () => {
    const runner = controlledRunner();
    const batcher = createBatcher({ run: runner.run, maxInFlight: 1, maxBatchSize: 2, tokenBudget: 10_000, maxQueue: 100 });
    const told: Array<[number, number]> = [];
    let settled = false;
    const streaming = batcher.submit([item(40), item(40), item(9)], {
      context: "s",
      batchSizeCap: 2,
      onItem: (slot, vector) => told.push([slot, vector[0]]),
    });
    void streaming.then(() => (settled = true));
    await flush();
    runner.batches[0].release();
    await flush();
    expect(told).toEqual([[0, 40], [1, 40]]);
    expect(settled).toBe(false);
    runner.batches[1].release();
    const result = await streaming;
    expect(told).toEqual([[0, 40], [1, 40], [2, 9]]);
    expect(result.vectors).toEqual([]);
  });

  describe("priorities", () => {
    it("runs waiting online items before background items queued earlier, never in one batch with them", async () => {
      const runner = controlledRunner();
      const batcher = createBatcher({ run: runner.run, maxInFlight: 1, maxBatchSize: 32, tokenBudget: 10_000, maxQueue: 100 });
      const first = batcher.submit([item(5)], { context: "job", priority: "background" });
      await flush();
      const rest = batcher.submit([item(5), item(6)], { context: "job", priority: "background" });
      const online = batcher.submit([item(5), item(7)], { context: "user" });
      runner.batches[0].release();
      await flush();
      expect(runner.batches[1].batch.context).toBe("user");
      expect(runner.batches[1].batch.items.map((entry) => entry.ids.length)).toEqual([5, 7]);
      runner.batches[1].release();
      await flush();
      expect(runner.batches[2].batch.context).toBe("job");
      expect(runner.batches[2].batch.items.map((entry) => entry.ids.length)).toEqual([5, 6]);
      runner.batches[2].release();
      await Promise.all([first, rest, online]);
    });

    it("keeps a runner slot free of background batches for online items", async () => {
      const runner = controlledRunner();
      const batcher = createBatcher({ run: runner.run, maxInFlight: 2, maxBatchSize: 1, tokenBudget: 10_000, maxQueue: 100 });
      const background = batcher.submit([item(3), item(3), item(3)], { context: "job", priority: "background" });
      await flush();
      expect(runner.batches).toHaveLength(1);
      const online = batcher.submit([item(4)], { context: "user" });
      await flush();
      expect(runner.batches.map(({ batch }) => batch.context)).toEqual(["job", "user"]);
      runner.batches[1].release();
      expect((await online).vectors.map((vector) => vector[0])).toEqual([4]);
      for (let round = 0; round < 3; round++) {
        runner.batches.at(-1)?.release();
        runner.batches[0].release();
        await flush();
      }
      expect(runner.batches.filter(({ batch }) => batch.context === "job")).toHaveLength(3);
      expect((await background).vectors).toHaveLength(3);
    });

    it("bounds each priority's queue on its own: background items never make online requests OVERLOADED", async () => {
      const runner = controlledRunner();
      const batcher = createBatcher({ run: runner.run, maxInFlight: 1, maxBatchSize: 1, tokenBudget: 1000, maxQueue: 3 });
      const background = batcher.submit([item(1), item(1), item(1)], { context: "job", priority: "background" });
      await flush();
      await expect(batcher.submit([item(1), item(1)], { context: "job", priority: "background" })).rejects.toMatchObject({ reason: "OVERLOADED" });
      const online = batcher.submit([item(2), item(2)], { context: "user" });
      await expect(batcher.submit([item(2), item(2)], { context: "user" })).rejects.toMatchObject({ reason: "OVERLOADED" });
      expect(batcher.queueDepth()).toBe(4);
      for (let round = 0; round < 5; round++) {
        runner.batches[round].release();
        await flush();
      }
      expect(runner.batches.map(({ batch }) => batch.context)).toEqual(["job", "user", "user", "job", "job"]);
      await Promise.all([background, online]);
      await batcher.idle();
    });
  });
});
