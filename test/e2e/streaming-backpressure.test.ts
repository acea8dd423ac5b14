import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { EmbedderService, StreamEmbeddingsRequestSchema } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { DEFAULT_STREAM_LIMITS } from "../../src/streaming/create-stream-sessions.js";
import { startChildService, type ChildService, type ChildServiceStats } from "../support/child-service.js";

type StreamRequestInit = MessageInitShape<typeof StreamEmbeddingsRequestSchema>;

/** About 1 KB of text per chunk. */
const PARAGRAPH = "Streaming clients send text continuously and want each embedding back soon. ".repeat(13);
const MB = 1024 * 1024;


const megabytes = (bytes: number) => (bytes / MB).toFixed(0);
const memoryLine = (before: ChildServiceStats, stalled: ChildServiceStats, after: ChildServiceStats) =>
  `server RSS ${megabytes(before.rss)} -> ${megabytes(stalled.rss)} (blocked) -> ${megabytes(after.rss)} MB (2 s later), ` +
  `JS heap ${megabytes(before.heapUsed)} -> ${megabytes(after.heapUsed)} MB, external ${megabytes(before.external)} -> ${megabytes(after.external)} MB`;

/** Polls `read` until it has not changed for `stillMs`; returns the settled value (fails after `timeoutMs`). */
async function settledValue(read: () => number, stillMs: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let value = read();
  let since = performance.now();
  while (performance.now() < deadline) {
    await sleep(100);
    const now = read();
    if (now !== value) {
      value = now;
      since = performance.now();
    } else if (performance.now() - since >= stillMs) {
      return value;
    }
  }
  throw new Error(`the value kept changing for ${timeoutMs} ms (last ${value})`);
}

/** The stream that took the most chunks: the slow reader's. */
function busiest(stats: ChildServiceStats) {
  return [...stats.streams.streams].sort((a, b) => b.received - a.received)[0];
}

describe("backpressure: a client that stops reading is stopped (server in a child process)", () => {
  let server: ChildService;
  let baseUrl: string;

  /** Proves other clients are served normally: a unary call and a short bidi stream on their own connections. */
  async function otherClientsServed(): Promise<{ unaryMs: number; streamMs: number }> {
    const started = performance.now();
    const response = await fetch(`${baseUrl}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ texts: ["another client", "is served meanwhile"] }),
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { embeddings: number[][] }).embeddings[1]).toHaveLength(512);
    const unaryMs = performance.now() - started;
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl }));
    async function* short(): AsyncGenerator<StreamRequestInit> {
      yield { message: { case: "config", value: { bufferSize: 8, maxLatencyMs: 10 } } };
      for (let index = 0; index < 20; index++) {
        yield { message: { case: "chunk", value: { chunkId: `o${index}`, text: `other ${index}`, isFinal: index === 19 } } };
      }
    }
    const streamStarted = performance.now();
    let answered = 0;
    for await (const answer of client.streamEmbeddings(short())) {
      expect(answer.embedding?.values).toHaveLength(512);
      answered++;
    }
    expect(answered).toBe(20);
    return { unaryMs, streamMs: performance.now() - streamStarted };
  }

  /**
   * Waits until the slow stream holds no text any more: everything it read has
   * been embedded, and what it holds are answers its client has not taken.
   */
  async function whenStreamIdle(): Promise<void> {
    const deadline = performance.now() + 90_000;
    while (performance.now() < deadline && busiest(await server.stats()).pendingBytes > 0) await sleep(100);
  }

  beforeAll(async () => {
    server = await startChildService();
    baseUrl = `http://127.0.0.1:${server.port}`;
    // Warm the inference sessions with the largest batches the test can cause (ONNX Runtime's arenas grow to the largest
    // batch and stay), so RSS growth measures the stream and not the engine.
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl }));
    async function* warm(): AsyncGenerator<StreamRequestInit> {
      yield { message: { case: "config", value: { bufferSize: 32, maxLatencyMs: 20 } } };
      for (let index = 0; index < 600; index++) {
        yield { message: { case: "chunk", value: { chunkId: `w${index}`, text: `${PARAGRAPH} ${index}`, isFinal: index === 599 } } };
      }
    }
    const texts = Array.from({ length: 1000 }, (_, index) => `${PARAGRAPH} ${index}`);
    for (let round = 0; round < 3; round++) await client.generateEmbeddings({ texts });
    for await (const _answer of client.streamEmbeddings(warm()));
    await otherClientsServed();
  }, 180_000);
  afterAll(() => server?.stop());

  it("gRPC (connect-node, HTTP/2): the server stops reading the stream at its bound, its RSS grows < 100 MB, others are served", async () => {
    const before = await server.stats();
    const abort = new AbortController();
    let pulled = 0;
    async function* flood(): AsyncGenerator<StreamRequestInit> {
      yield { message: { case: "config", value: { bufferSize: 32, maxLatencyMs: 20 } } };
      for (let index = 0; index < 1_000_000; index++) {
        pulled = index + 1;
        yield { message: { case: "chunk", value: { chunkId: `c${index}`, text: `${PARAGRAPH} ${index}` } } };
      }
    }
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl }));
    const answers = client.streamEmbeddings(flood(), { signal: abort.signal })[Symbol.asyncIterator]();
    try {
      // Take one answer, then read nothing more.
      expect((await answers.next()).value?.embedding?.values).toHaveLength(512);
      const blockedAt = await settledValue(() => pulled, 2_000, 90_000);
      await whenStreamIdle();
      const stalled = await server.stats();
      await sleep(2_000);
      const later = await server.stats();
      const stream = busiest(later);
      console.info(
        `gRPC slow reader: the client wrote ${blockedAt} chunks before its writes blocked; the server read ${stream.received} ` +
          `(${stream.pendingChunks} pending); ${memoryLine(before, stalled, later)}`,
      );
      expect(stream.pendingChunks).toBeLessThanOrEqual(DEFAULT_STREAM_LIMITS.maxPendingChunks);
      expect(stream.full).toBe(true);
      expect(stream.received).toBe(busiest(stalled).received);
      // The bound, plus the answers the transport took before flow control stopped it (HTTP/2 window and stream buffers).
      expect(stream.received).toBeLessThanOrEqual(DEFAULT_STREAM_LIMITS.maxPendingChunks + 64);
      expect(blockedAt).toBeLessThan(stream.received + 2_000);
      expect(later.rss - before.rss).toBeLessThan(100 * MB);
      // While the client keeps writing into its blocked stream, the server's memory stays put.
      expect(later.rss - stalled.rss).toBeLessThan(10 * MB);
      const others = await otherClientsServed();
      console.info(`meanwhile another client: unary ${others.unaryMs.toFixed(0)} ms, 20-chunk stream ${others.streamMs.toFixed(0)} ms`);
      expect(others.unaryMs).toBeLessThan(10_000);
      expect(others.streamMs).toBeLessThan(10_000);
      expect(pulled).toBe(blockedAt);
    } finally {
      abort.abort();
      await answers.next().catch(() => undefined);
    }
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline && (await server.stats()).streams.open > 0) await sleep(100);
    expect((await server.stats()).streams).toMatchObject({ open: 0, timers: 0 });
  }, 180_000);

  it("WebSocket: a paused client's sends back up in its own buffer while the server holds a bounded stream", async () => {
    const before = await server.stats();
    const socket = new WebSocket(`ws://127.0.0.1:${server.port}/v1/embeddings/ws`);
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    try {
      const started = new Promise((resolve) => socket.once("message", resolve));
      socket.send(JSON.stringify({ id: "s", type: "request", timestamp: new Date().toISOString(), payload: { action: "stream_embed", config: { buffer_size: 32, max_latency_ms: 20 } } }));
      expect(JSON.parse(String(await started))).toMatchObject({ type: "response", payload: { action: "stream_embed" } });
      socket.pause();
      let sent = 0;
      const sendSome = (count: number) => {
        for (let index = 0; index < count; index++, sent++) {
          socket.send(JSON.stringify({ id: `m${sent}`, type: "request", timestamp: "", payload: { action: "add_chunk", chunk_id: `c${sent}`, text: `${PARAGRAPH} ${sent}` } }));
        }
      };
      // Keep writing until the server has read nothing for 2 s while the client's own buffer grows.
      const deadline = performance.now() + 90_000;
      let lastReceived = -1;
      let stillSince = performance.now();
      while (performance.now() < deadline) {
        sendSome(50);
        await sleep(250);
        const received = busiest(await server.stats()).received;
        if (received !== lastReceived) {
          lastReceived = received;
          stillSince = performance.now();
        } else if (performance.now() - stillSince >= 2_000 && socket.bufferedAmount > MB) {
          break;
        }
      }
      await whenStreamIdle();
      const stalled = await server.stats();
      sendSome(200);
      await sleep(2_000);
      const later = await server.stats();
      const stream = busiest(later);
      console.info(
        `WebSocket slow reader: the client sent ${sent} chunks, ${(socket.bufferedAmount / MB).toFixed(1)} MB still queued in the client; ` +
          `the server read ${stream.received} (${stream.pendingChunks} pending); ${memoryLine(before, stalled, later)}`,
      );
      expect(stream.full).toBe(true);
      expect(stream.pendingChunks).toBeLessThanOrEqual(DEFAULT_STREAM_LIMITS.maxPendingChunks);
      expect(stream.received).toBe(busiest(stalled).received);
      expect(stream.received).toBeLessThan(sent / 2);
      expect(later.rss - before.rss).toBeLessThan(100 * MB);
      // While the client keeps writing into its blocked stream, the server's memory stays put.
      expect(later.rss - stalled.rss).toBeLessThan(10 * MB);
      const others = await otherClientsServed();
      expect(others.unaryMs).toBeLessThan(10_000);
      expect(others.streamMs).toBeLessThan(10_000);
    } finally {
      socket.terminate();
    }
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline && (await server.stats()).streams.open > 0) await sleep(100);
    expect((await server.stats()).streams).toMatchObject({ open: 0, timers: 0 });
  }, 180_000);
});
