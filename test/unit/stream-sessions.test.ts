import { afterEach, describe, expect, it, vi } from "vitest";
import { EmbedderError } from "../../src/domain/errors.js";
import type { EmbedRequest, EmbedStreamItem, EmbedStreamResult, Embedder, RunInfo } from "../../src/domain/types.js";
import { createStreamSessions, type ChunkAnswer, type StreamLimits } from "../../src/streaming/create-stream-sessions.js";
import { resolveStreamSettings } from "../../src/streaming/stream-settings.js";

const RUN: RunInfo = {
  modelId: "fake/model",
  name: "Fake",
  dimensions: 2,
  qualityScore: 0,
  sizeMb: 0,
  precision: "fp32",
  executionProvider: "cpu",
  provider: "local",
};

const REQUEST: EmbedRequest = {
  requestId: "r",
  texts: [],
  dimensions: 0,
  model: "",
  config: {},
  truncate: "end",
  normalize: true,
  embeddingTypes: ["float"],
  allowCrossModelFallback: false,
};

interface Flush {
  texts: string[];
  signal: AbortSignal | undefined;
  /** Tells item `index` its embedding ([length of its text, index]). */
  answer(index: number): void;
  resolve(): void;
  reject(error: unknown): void;
}

/** An Embedder whose streaming calls wait until the test answers them; `check` resolves at once. */
function controlledEmbedder() {
  const flushes: Flush[] = [];
  const embedder: Embedder = {
    embed: () => Promise.reject(new Error("not used")),
    check: async () => ({ run: RUN, hardwareProfile: "medium", dimensionsPolicy: "native" }),
    listModels: async () => [],
    health: () => {
      throw new Error("not used");
    },
    embedStream(request, onItem: (item: EmbedStreamItem) => void, signal) {
      const result: EmbedStreamResult = {
        run: RUN,
        timings: { totalMs: 0, tokenizationMs: 0, queueMs: 0, inferenceMs: 0 },
        promptTokens: 0,
        truncatedInputs: [],
        hardwareProfile: "medium",
        dimensionsPolicy: "native",
      };
      return new Promise((resolve, reject) => {
        flushes.push({
          texts: request.texts,
          signal,
          answer: (index) => onItem({ index, embedding: { float: Float32Array.of(request.texts[index].length, index) }, tokens: 1, run: RUN }),
          resolve: () => resolve(result),
          reject,
        });
      });
    },
  };
  return { embedder, flushes };
}

const chunk = (chunkId: string, text = `text of ${chunkId}`, isFinal = false) => ({ chunkId, text, isFinal, position: 0 });

async function open(options: { bufferSize?: number; maxLatencyMs?: number; limits?: Partial<StreamLimits> } = {}) {
  const fake = controlledEmbedder();
  const sessions = createStreamSessions({ embedder: fake.embedder, limits: options.limits });
  const settings = resolveStreamSettings({ request: REQUEST, bufferSize: options.bufferSize ?? 0, maxLatencyMs: options.maxLatencyMs ?? 0 });
  const session = await sessions.open(settings, "req-1");
  return { ...fake, sessions, session, answers: session.answers[Symbol.asyncIterator]() };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

async function take(answers: AsyncIterator<ChunkAnswer>, count: number): Promise<ChunkAnswer[]> {
  const taken: ChunkAnswer[] = [];
  for (let index = 0; index < count; index++) {
    const next = await answers.next();
    if (next.done === true) throw new Error(`the stream ended after ${taken.length} answers`);
    taken.push(next.value);
  }
  return taken;
}

afterEach(() => {
  vi.useRealTimers();
});

describe("stream sessions", () => {
  it("settles defaults and refuses out-of-range settings", () => {
    const defaults = resolveStreamSettings({ request: REQUEST, bufferSize: 0, maxLatencyMs: 0 });
    expect([defaults.bufferSize, defaults.maxLatencyMs]).toEqual([32, 50]);
    expect(() => resolveStreamSettings({ request: REQUEST, bufferSize: 257, maxLatencyMs: 0 })).toThrow(/buffer_size/);
    expect(() => resolveStreamSettings({ request: REQUEST, bufferSize: 1, maxLatencyMs: 10_001 })).toThrow(/max_latency_ms/);
    expect(() => resolveStreamSettings({ request: { ...REQUEST, dimensions: 3 }, bufferSize: 1, maxLatencyMs: 1 })).toThrow(
      expect.objectContaining({ reason: "INVALID_DIMENSIONS" }),
    );
  });

  it("flushes as soon as buffer_size chunks wait, without waiting for max_latency_ms", async () => {
    const { session, flushes, answers } = await open({ bufferSize: 3, maxLatencyMs: 10_000 });
    session.add(chunk("a"));
    session.add(chunk("b"));
    expect(flushes).toHaveLength(0);
    session.add(chunk("c"));
    expect(flushes.map((flush) => flush.texts)).toEqual([["text of a", "text of b", "text of c"]]);
    flushes[0].answer(1);
    const [answer] = await take(answers, 1);
    expect(answer).toMatchObject({ chunkId: "b", arrival: 1, sequencePosition: 1, run: RUN });
    session.close();
  });

  it("flushes when max_latency_ms has passed since the oldest waiting chunk", async () => {
    vi.useFakeTimers();
    const { session, flushes, sessions } = await open({ bufferSize: 32, maxLatencyMs: 50 });
    session.add(chunk("first"));
    vi.advanceTimersByTime(30);
    session.add(chunk("second"));
    vi.advanceTimersByTime(19);
    expect(flushes).toHaveLength(0);
    expect(sessions.stats().timers).toBe(1);
    vi.advanceTimersByTime(1);
    expect(flushes.map((flush) => flush.texts)).toEqual([["text of first", "text of second"]]);
    expect(sessions.stats().timers).toBe(0);
    session.close();
  });

  it("answers an empty chunk with EMPTY_INPUT at once, the others normally, and ends after a final chunk's answer", async () => {
    const { session, flushes, answers } = await open({ bufferSize: 8 });
    session.add({ chunkId: "one", text: "hello", isFinal: false, position: 7 });
    session.add(chunk("blank", ""));
    const [blank] = await take(answers, 1);
    expect(blank).toMatchObject({ chunkId: "blank", arrival: 1 });
    expect("error" in blank && blank.error.reason).toBe("EMPTY_INPUT");
    session.add(chunk("last", "bye", true));
    expect(session.accepting()).toBe(false);
    expect(session.add(chunk("late"))).toBe(-1);
    expect(flushes.map((flush) => flush.texts)).toEqual([["hello", "bye"]]);
    flushes[0].answer(1);
    flushes[0].answer(0);
    flushes[0].resolve();
    const answered = await take(answers, 2);
    expect(answered.map((answer) => [answer.chunkId, answer.sequencePosition])).toEqual([["last", 2], ["one", 7]]);
    expect(await answers.next()).toEqual({ done: true, value: undefined });
  });

  it("turns a retryable pipeline failure into per-chunk errors and a stream-wide one into the stream's end", async () => {
    const { session, flushes, answers } = await open({ bufferSize: 2 });
    session.add(chunk("a"));
    session.add(chunk("b"));
    flushes[0].answer(0);
    flushes[0].reject(new EmbedderError("OVERLOADED", "busy", { retryAfterMs: 250 }));
    const [first, second] = await take(answers, 2);
    expect("embedding" in first && first.chunkId).toBe("a");
    expect(second.chunkId).toBe("b");
    expect("error" in second && [second.error.reason, second.error.retryAfterMs]).toEqual(["OVERLOADED", 250]);
    expect(session.accepting()).toBe(true);
    session.add(chunk("c"));
    session.add(chunk("d"));
    flushes[1].reject(new EmbedderError("UNKNOWN_MODEL", "gone"));
    await expect(answers.next()).rejects.toMatchObject({ reason: "UNKNOWN_MODEL" });
    expect(session.accepting()).toBe(false);
    session.close();
  });

  it("stops taking chunks at its pending-chunk limit until the consumer takes answers", async () => {
    const { session, flushes, answers, sessions } = await open({ bufferSize: 2, limits: { maxPendingChunks: 4 } });
    for (const id of ["a", "b", "c"]) session.add(chunk(id));
    expect(session.hasRoom()).toBe(true);
    session.add(chunk("d"));
    expect(session.hasRoom()).toBe(false);
    let writable = false;
    void session.writable().then(() => (writable = true));
    for (const flush of flushes) {
      flush.answer(0);
      flush.answer(1);
      flush.resolve();
    }
    await settle();
    expect(writable).toBe(false);
    expect(sessions.stats().streams[0]).toMatchObject({ received: 4, pendingChunks: 4, pendingBytes: 0, full: true });
    await take(answers, 1);
    await settle();
    expect(writable).toBe(true);
    expect(sessions.stats().streams[0]).toMatchObject({ pendingChunks: 3, full: false });
    session.close();
  });

  it("counts the bytes of unanswered texts against its byte limit", async () => {
    const { session, flushes } = await open({ bufferSize: 8, limits: { maxPendingBytes: 10 } });
    session.add(chunk("a", "12345"));
    expect(session.hasRoom()).toBe(true);
    session.add(chunk("b", "67890", true));
    expect(session.hasRoom()).toBe(false);
    flushes[0].answer(0);
    flushes[0].answer(1);
    expect(session.hasRoom()).toBe(true);
    session.close();
  });

  it("leaves nothing behind when closed mid-way: no timer, no stream, flushes cancelled", async () => {
    const { session, flushes, sessions } = await open({ bufferSize: 2, maxLatencyMs: 10_000 });
    session.add(chunk("a"));
    session.add(chunk("b"));
    session.add(chunk("c"));
    expect(sessions.stats()).toMatchObject({ open: 1, timers: 1, flushesInFlight: 1 });
    session.close();
    expect(flushes[0].signal?.aborted).toBe(true);
    expect(sessions.stats()).toMatchObject({ open: 0, timers: 0, streams: [] });
    flushes[0].reject(new EmbedderError("CANCELLED", "cancelled"));
    await settle();
    expect(sessions.stats().flushesInFlight).toBe(0);
  });

  it("on shutdown answers what it holds, then fails with SHUTTING_DOWN and refuses new streams", async () => {
    const { session, flushes, sessions, answers } = await open({ bufferSize: 8 });
    session.add(chunk("held"));
    sessions.shutdown();
    expect(session.accepting()).toBe(false);
    flushes[0].answer(0);
    flushes[0].resolve();
    expect((await take(answers, 1))[0].chunkId).toBe("held");
    await expect(answers.next()).rejects.toMatchObject({ reason: "SHUTTING_DOWN", retryAfterMs: 1000 });
    await expect(sessions.open(session.settings, "later")).rejects.toMatchObject({ reason: "SHUTTING_DOWN" });
    session.close();
  });
});
