import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import {
  EmbedderService,
  StreamEmbeddingsRequestSchema,
  StreamEmbeddingsResponseSchema,
  type StreamEmbeddingsResponse,
} from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { DEFAULT_MODEL_ID } from "../../src/models/builtin.js";
import { startRealService, type RunningService } from "../support/real-service.js";
import { SYSTEM_PYTHON as PYTHON, pythonCanImport } from "../support/system-python.js";


type StreamRequestInit = MessageInitShape<typeof StreamEmbeddingsRequestSchema>;

const SENTENCES = JSON.parse(readFileSync(new URL("../fixtures/use-lite-sentences.json", import.meta.url), "utf8")) as string[];
/** 1,000 distinct texts of mixed lengths. */
const TEXTS = Array.from({ length: 1000 }, (_, index) => `${SENTENCES[index % SENTENCES.length]} #${index}`);
const STREAM_CLIENT = new URL("../../examples/python/stream_client.py", import.meta.url).pathname;

const pythonHasGrpc = pythonCanImport("grpc");

function config(init: { bufferSize?: number; maxLatencyMs?: number; model?: string; truncate?: number } = {}): StreamRequestInit {
  return { message: { case: "config", value: { bufferSize: 32, maxLatencyMs: 20, ...init } } };
}

function chunk(index: number, text = TEXTS[index], isFinal = false): StreamRequestInit {
  return { message: { case: "chunk", value: { chunkId: `c${index}`, text, position: BigInt(index), isFinal } } };
}

/** Config, then one chunk per text, the last one final. */
async function* chunkStream(texts: readonly string[], settings: Parameters<typeof config>[0] = {}): AsyncGenerator<StreamRequestInit> {
  yield config(settings);
  for (let index = 0; index < texts.length; index++) yield chunk(index, texts[index], index === texts.length - 1);
}

/** Largest absolute difference between the vectors by index and the unary ones; every index 0..999 must be there once. */
function maxAbsDiffByIndex(vectors: Map<number, ArrayLike<number>>, expected: number[][]): number {
  expect(vectors.size).toBe(expected.length);
  let worst = 0;
  for (const [index, vector] of vectors) {
    expect(vector.length).toBe(expected[index].length);
    for (let position = 0; position < vector.length; position++) {
      worst = Math.max(worst, Math.abs(vector[position] - expected[index][position]));
    }
  }
  return worst;
}

/** Indexes bidi answers by their chunk id "c<index>", failing on a duplicate or a per-chunk error. */
function vectorsOf(answers: StreamEmbeddingsResponse[]): Map<number, number[]> {
  const vectors = new Map<number, number[]>();
  for (const answer of answers) {
    expect(answer.error, `chunk ${answer.chunkId}`).toBeUndefined();
    const index = Number(answer.chunkId.slice(1));
    expect(vectors.has(index)).toBe(false);
    expect(answer.metadata?.sequencePosition).toBe(BigInt(index));
    expect(answer.metadata?.modelUsed).toBe(DEFAULT_MODEL_ID);
    vectors.set(index, answer.embedding!.values);
  }
  return vectors;
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

async function failure(run: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await run();
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}

const reasonOf = (error: ConnectError) => error.findDetails(ErrorInfoSchema)[0]?.reason;

/** One WebSocket client request: the envelope `{id, type: "request", timestamp, payload}` with `payload.action`. */
function request(id: string, action: string, payload: object = {}): string {
  return JSON.stringify({ id, type: "request", timestamp: new Date().toISOString(), payload: { action, ...payload } });
}

interface ServerMessage {
  id: string;
  type: string;
  timestamp: string;
  payload: Record<string, any>;
}

/** What a server message is: its type, or for a `response` its `action` ("chunk" for a chunk's embedding). */
function kindOf(message: ServerMessage): string {
  if (message.type !== "response") return message.type;
  return typeof message.payload.action === "string" ? message.payload.action : "chunk";
}

async function openWebSocket(url: string): Promise<{ socket: WebSocket; messages: ServerMessage[]; next: (type: string) => Promise<ServerMessage> }> {
  const socket = new WebSocket(url);
  const messages: ServerMessage[] = [];
  /** Messages no `next` has returned yet, in arrival order. */
  const unread: ServerMessage[] = [];
  const waiters: Array<{ type: string; resolve: (message: ServerMessage) => void }> = [];
  socket.on("message", (data) => {
    const message = JSON.parse(String(data)) as ServerMessage;
    messages.push(message);
    const waiter = waiters.findIndex((candidate) => candidate.type === kindOf(message));
    if (waiter !== -1) waiters.splice(waiter, 1)[0].resolve(message);
    else unread.push(message);
  });
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  /** The first message of `type` (a `response` by its action, "chunk" for a chunk's) not returned before, waiting for it when none has come yet. */
  const next = (type: string) => {
    const index = unread.findIndex((message) => kindOf(message) === type);
    if (index !== -1) return Promise.resolve(unread.splice(index, 1)[0]);
    return new Promise<ServerMessage>((resolve) => waiters.push({ type, resolve }));
  };
  return { socket, messages, next };
}

/** Reads a fetch body line by line as it arrives, with the time each line came. */
async function readLines(response: Response): Promise<Array<{ line: string; atMs: number }>> {
  const started = performance.now();
  const lines: Array<{ line: string; atMs: number }> = [];
  const decoder = new TextDecoder();
  let pending = "";
  for await (const bytes of response.body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(bytes, { stream: true });
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    for (const line of parts) lines.push({ line, atMs: performance.now() - started });
  }
  if (pending !== "") lines.push({ line: pending, atMs: performance.now() - started });
  return lines;
}

describe("streaming (real server, real model)", () => {
  let running: RunningService;
  let grpcClient: Client<typeof EmbedderService>;
  let expected: number[][];
  let wsUrl: string;

  beforeAll(async () => {
    running = await startRealService();
    grpcClient = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
    const unary = await grpcClient.generateEmbeddings({ texts: TEXTS });
    expected = unary.embeddings.map((embedding) => embedding.values);
    wsUrl = `${running.baseUrl.replace("http:", "ws:")}/v1/embeddings/ws`;
  }, 60_000);
  afterAll(() => running?.stop());

  /** A metric's value as `GET /metrics` shows it. */
  async function metricValue(name: string): Promise<number> {
    const text = await (await fetch(`${running.baseUrl}/metrics`)).text();
    const line = text.split("\n").find((candidate) => candidate.startsWith(`${name} `));
    return Number(line?.split(" ")[1]);
  }

  it("StreamEmbeddings through the connect-node gRPC transport: 1,000 chunks, each answered once, equal to the unary vectors", async () => {
    const answers = await collect(grpcClient.streamEmbeddings(chunkStream(TEXTS)));
    expect(answers).toHaveLength(1000);
    expect(maxAbsDiffByIndex(vectorsOf(answers), expected)).toBeLessThanOrEqual(1e-6);
  });

  it("StreamEmbeddings through @grpc/grpc-js (bidi)", async () => {
    const client = new grpc.Client(`127.0.0.1:${running.port}`, grpc.credentials.createInsecure());
    try {
      const call = client.makeBidiStreamRequest(
        "/sutra.embedder.v1.EmbedderService/StreamEmbeddings",
        (message: Uint8Array) => Buffer.from(message),
        (bytes: Buffer) => fromBinary(StreamEmbeddingsResponseSchema, bytes),
      );
      const answers: StreamEmbeddingsResponse[] = [];
      const ended = new Promise<void>((resolve, reject) => {
        call.on("data", (answer: StreamEmbeddingsResponse) => answers.push(answer));
        call.on("error", reject);
        call.on("end", resolve);
      });
      for await (const request of chunkStream(TEXTS)) {
        if (!call.write(toBinary(StreamEmbeddingsRequestSchema, create(StreamEmbeddingsRequestSchema, request)))) {
          await new Promise((resolve) => call.once("drain", resolve));
        }
      }
      call.end();
      await ended;
      expect(answers).toHaveLength(1000);
      expect(maxAbsDiffByIndex(vectorsOf(answers), expected)).toBeLessThanOrEqual(1e-6);
    } finally {
      client.close();
    }
  });

  it.skipIf(!pythonHasGrpc)(pythonHasGrpc
    ? "StreamEmbeddings through Python grpcio (examples/python/stream_client.py)"
    : "StreamEmbeddings through Python grpcio: skipped because /usr/bin/python3 cannot import grpc", async () => {
    const stdout = await new Promise<string>((resolve, reject) => {
      const child = execFile(PYTHON, [STREAM_CLIENT, "--target", `127.0.0.1:${running.port}`, "--buffer-size", "64"], {
        maxBuffer: 64 * 1024 * 1024,
        timeout: 120_000,
      }, (error, out, err) => (error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out)));
      child.stdin?.end(JSON.stringify(TEXTS));
    });
    const { answers } = JSON.parse(stdout) as { answers: Array<{ chunk_id: string; sequence_position: number; embedding: number[]; model_used: string }> };
    expect(answers).toHaveLength(1000);
    const vectors = new Map(answers.map((answer) => {
      expect(answer.model_used).toBe(DEFAULT_MODEL_ID);
      expect(answer.chunk_id).toBe(`c${answer.sequence_position}`);
      return [answer.sequence_position, answer.embedding] as const;
    }));
    expect(maxAbsDiffByIndex(vectors, expected)).toBeLessThanOrEqual(1e-6);
  });

  it("the WebSocket route with a ws client: handshake, get_state, 1,000 add_chunk answered by id, stream_end", async () => {
    const { socket, messages, next } = await openWebSocket(wsUrl);
    try {
      socket.send(request("hello", "handshake", { session_id: "session-1", protocol_version: "1.0", client_capabilities: {} }));
      const handshake = await next("handshake");
      expect(handshake).toMatchObject({ id: "hello", type: "response", payload: { session_id: "session-1", protocol_version: "1.0", max_pending_chunks: 512 } });
      socket.send(request("g0", "get_state"));
      expect(await next("state")).toMatchObject({ id: "g0", payload: { session_id: "session-1", is_streaming: false, chunks_processed: 0 } });
      socket.send(request("s1", "stream_embed", { config: { buffer_size: 32, max_latency_ms: 20 }, metadata: { session_id: "session-1" } }));
      expect(await next("stream_embed")).toMatchObject({ id: "s1", payload: { session_id: "session-1", model_used: DEFAULT_MODEL_ID, dimensions: 512, buffer_size: 32 } });
      const ended = next("stream_end");
      TEXTS.forEach((text, index) => {
        socket.send(request(`m${index}`, "add_chunk", { chunk_id: `c${index}`, text, position: index, is_final: index === TEXTS.length - 1 }));
      });
      const end = await ended;
      expect(end).toMatchObject({ id: "s1", payload: { chunks_processed: 1000 } });
      const answers = messages.filter((message) => kindOf(message) === "chunk");
      expect(answers).toHaveLength(1000);
      const vectors = new Map<number, number[]>();
      for (const answer of answers) {
        const index = Number(answer.payload.chunk_id.slice(1));
        expect(answer.id).toBe(`m${index}`);
        expect(answer.payload.metadata).toMatchObject({ sequence_position: index, model_used: DEFAULT_MODEL_ID });
        expect(typeof answer.payload.metadata.quality_score).toBe("number");
        vectors.set(index, answer.payload.embedding);
      }
      expect(maxAbsDiffByIndex(vectors, expected)).toBeLessThanOrEqual(1e-6);
      expect(new Date(answers[0].timestamp).getTime()).toBeGreaterThan(Date.now() - 60_000);
      socket.send(request("g1", "get_state"));
      const state = await next("state");
      expect(state.payload).toMatchObject({ is_streaming: false, chunks_processed: 1000, buffer_utilization: 0 });
      expect(state.payload.average_latency_ms).toBeGreaterThan(0);
    } finally {
      socket.close();
    }
  });

  it("POST /v1/embeddings/stream as NDJSON: one {index, embedding} record per text, streamed in completion order", async () => {
    const response = await fetch(`${running.baseUrl}/v1/embeddings/stream`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/x-ndjson" },
      body: JSON.stringify({ texts: TEXTS }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/x-ndjson; charset=utf-8");
    const lines = await readLines(response);
    const records = lines.filter(({ line }) => line !== "").map(({ line }) => JSON.parse(line) as { index: number; embedding: number[]; tokens: number });
    expect(records).toHaveLength(1000);
    expect(maxAbsDiffByIndex(new Map(records.map((record) => [record.index, record.embedding])), expected)).toBeLessThanOrEqual(1e-6);
    expect(records.every((record) => record.tokens > 0)).toBe(true);
    // Records come as their batches finish, not all at the end.
    expect(lines[0].atMs).toBeLessThan(lines[lines.length - 1].atMs);
  });

  it("POST /api/v1/embeddings/stream as SSE: one data event per text", async () => {
    const response = await fetch(`${running.baseUrl}/api/v1/embeddings/stream`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ texts: TEXTS }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const events = (await response.text()).split("\n\n").filter((event) => event !== "");
    expect(events.every((event) => event.startsWith("data: "))).toBe(true);
    const records = events.map((event) => JSON.parse(event.slice("data: ".length)) as { index: number; embedding: number[] });
    expect(maxAbsDiffByIndex(new Map(records.map((record) => [record.index, record.embedding])), expected)).toBeLessThanOrEqual(1e-6);
  });

  it("GenerateEmbeddingsStream through the Connect protocol over HTTP/1.1", async () => {
    const client = createClient(EmbedderService, createConnectTransport({ baseUrl: running.baseUrl, httpVersion: "1.1" }));
    const messages = await collect(client.generateEmbeddingsStream({ texts: TEXTS }));
    expect(messages.every((message) => message.modelInfo?.modelId === DEFAULT_MODEL_ID)).toBe(true);
    const vectors = new Map(messages.map((message) => [message.index, message.embedding!.values]));
    expect(maxAbsDiffByIndex(vectors, expected)).toBeLessThanOrEqual(1e-6);
  });

  it("answers a lone chunk after max_latency_ms 50 plus about one inference", async () => {
    const single: number[] = [];
    for (let round = 0; round < 5; round++) {
      const started = performance.now();
      await grpcClient.generateEmbeddings({ texts: ["a lone chunk of text"] });
      single.push(performance.now() - started);
    }
    const oneInferenceMs = single.sort((a, b) => a - b)[2];
    const writes: Array<() => void> = [];
    async function* lone(): AsyncGenerator<StreamRequestInit> {
      yield config({ bufferSize: 32, maxLatencyMs: 50 });
      yield chunk(0, "a lone chunk of text");
      await new Promise<void>((resolve) => writes.push(resolve));
    }
    const sent = performance.now();
    const answers = grpcClient.streamEmbeddings(lone())[Symbol.asyncIterator]();
    const first = await answers.next();
    const elapsedMs = performance.now() - sent;
    writes.forEach((resolve) => resolve());
    await answers.return?.();
    const serverLatencyMs = first.value!.metadata!.latencyMs;
    console.info(`lone chunk, max_latency_ms 50: answered after ${elapsedMs.toFixed(1)} ms at the client, ${serverLatencyMs.toFixed(1)} ms in the server; one warm unary call ${oneInferenceMs.toFixed(1)} ms`);
    expect(first.value!.embedding!.values).toHaveLength(512);
    expect(serverLatencyMs).toBeGreaterThanOrEqual(49);
    // Generous: the machine is shared, and the stream's one inference may wait behind another batch.
    expect(serverLatencyMs).toBeLessThanOrEqual(50 + 2 * oneInferenceMs + 250);
    expect(elapsedMs).toBeLessThanOrEqual(50 + 2 * oneInferenceMs + 500);
  });

  it("flushes as soon as buffer_size chunks wait, long before max_latency_ms", async () => {
    let release: () => void = () => undefined;
    async function* four(): AsyncGenerator<StreamRequestInit> {
      yield config({ bufferSize: 4, maxLatencyMs: 10_000 });
      for (let index = 0; index < 4; index++) yield chunk(index);
      await new Promise<void>((resolve) => (release = resolve));
    }
    const started = performance.now();
    const answers = grpcClient.streamEmbeddings(four())[Symbol.asyncIterator]();
    const got: StreamEmbeddingsResponse[] = [];
    for (let index = 0; index < 4; index++) got.push((await answers.next()).value!);
    const elapsedMs = performance.now() - started;
    expect(await metricValue("sutra_streams_open")).toBe(1);
    release();
    await answers.return?.();
    expect(got.map((answer) => answer.chunkId).sort()).toEqual(["c0", "c1", "c2", "c3"]);
    expect(elapsedMs).toBeLessThan(3_000);
  });

  it("answers a bad chunk with its own error and the rest of the stream normally", async () => {
    const texts = TEXTS.slice(0, 20).map((text, index) => (index === 7 ? "" : text));
    texts[12] = "word ".repeat(400);
    const answers = await collect(grpcClient.streamEmbeddings(chunkStream(texts, { bufferSize: 8, truncate: 3 })));
    expect(answers).toHaveLength(20);
    const failed = answers.filter((answer) => answer.error !== undefined);
    expect(failed.map((answer) => [answer.chunkId, answer.error!.code]).sort()).toEqual([["c12", "INPUT_TOO_LONG"], ["c7", "EMPTY_INPUT"]]);
    const vectors = new Map(answers.filter((answer) => answer.error === undefined).map((answer) => [Number(answer.chunkId.slice(1)), answer.embedding!.values]));
    expect(vectors.size).toBe(18);
    for (const [index, vector] of vectors) {
      expect(Math.max(...vector.map((value, position) => Math.abs(value - expected[index][position])))).toBeLessThanOrEqual(1e-6);
    }
  });

  it("ends the stream with a status for a bad config or a stream that does not open with one", async () => {
    const unknown = await failure(() => collect(grpcClient.streamEmbeddings(chunkStream(["x"], { model: "no-such-model" }))));
    expect([unknown.code, reasonOf(unknown)]).toEqual([Code.NotFound, "UNKNOWN_MODEL"]);
    const latency = await failure(() => collect(grpcClient.streamEmbeddings(chunkStream(["x"], { maxLatencyMs: 60_000 }))));
    expect([latency.code, reasonOf(latency)]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT"]);
    async function* noConfig(): AsyncGenerator<StreamRequestInit> {
      yield chunk(0);
    }
    const missing = await failure(() => collect(grpcClient.streamEmbeddings(noConfig())));
    expect([missing.code, reasonOf(missing)]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT"]);
  });

  it("WebSocket errors carry error_code, error_message, chunk_id and retry_after_ms; the connection stays usable", async () => {
    const { socket, next } = await openWebSocket(wsUrl);
    try {
      socket.send(request("a0", "add_chunk", { chunk_id: "early", text: "no stream yet" }));
      expect(await next("error")).toMatchObject({ id: "a0", payload: { error_code: "INVALID_ARGUMENT", chunk_id: "early", retry_after_ms: 0 } });
      socket.send("not json");
      expect((await next("error")).payload.error_code).toBe("INVALID_ARGUMENT");
      socket.send(JSON.stringify({ id: "x", type: "embedding", timestamp: "", payload: {} }));
      expect(await next("error")).toMatchObject({ id: "x", payload: { error_code: "INVALID_ARGUMENT", details: { field: "type" } } });
      socket.send(request("y", "end_stream"));
      expect(await next("error")).toMatchObject({ id: "y", payload: { error_code: "INVALID_ARGUMENT", details: { field: "payload.action" } } });
      socket.send(request("s0", "stream_embed", { config: { model: "no-such-model" } }));
      expect(await next("error")).toMatchObject({ id: "s0", payload: { error_code: "UNKNOWN_MODEL" } });
      socket.send(request("s1", "stream_embed", { config: { buffer_size: 2 } }));
      await next("stream_embed");
      socket.send(request("a1", "add_chunk", { chunk_id: "blank", text: "" }));
      const blank = await next("error");
      expect(blank).toMatchObject({ id: "a1", payload: { error_code: "EMPTY_INPUT", chunk_id: "blank", retry_after_ms: 0 } });
      expect(typeof blank.payload.error_message).toBe("string");
      socket.send(request("a2", "add_chunk", { chunk_id: "fine", text: "still answered", is_final: true }));
      expect(await next("chunk")).toMatchObject({ id: "a2", payload: { chunk_id: "fine" } });
      expect(await next("stream_end")).toMatchObject({ id: "s1", payload: { chunks_processed: 2 } });
    } finally {
      socket.close();
    }
  });

  it("100 streams opened and dropped mid-way leave no open stream, timer, flush or queued text behind", async () => {
    const timeouts = () => process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
    await grpcClient.generateEmbeddings({ texts: ["open the connection first"] });
    const timersBefore = timeouts();
    const dropped: Array<Promise<unknown>> = [];
    for (let stream = 0; stream < 50; stream++) {
      const abort = new AbortController();
      let chunksPulled = 0;
      async function* halfway(): AsyncGenerator<StreamRequestInit> {
        yield config({ bufferSize: 8, maxLatencyMs: 10_000 });
        for (let index = 0; index < 12; index++) {
          chunksPulled++;
          yield chunk(index);
        }
        await sleep(60_000, undefined, { signal: abort.signal }).catch(() => undefined);
      }
      const answers = grpcClient.streamEmbeddings(halfway(), { signal: abort.signal })[Symbol.asyncIterator]();
      dropped.push(answers.next().then(async () => {
        expect(chunksPulled).toBeGreaterThan(0);
        abort.abort();
        await answers.next().catch(() => undefined);
      }));
    }
    const sockets: WebSocket[] = [];
    for (let stream = 0; stream < 50; stream++) {
      const { socket, next } = await openWebSocket(wsUrl);
      sockets.push(socket);
      socket.send(request("s", "stream_embed", { config: { buffer_size: 8, max_latency_ms: 10_000 } }));
      const started = next("stream_embed");
      for (let index = 0; index < 12; index++) socket.send(request(`m${index}`, "add_chunk", { chunk_id: `c${index}`, text: TEXTS[index] }));
      dropped.push(started.then(() => socket.terminate()));
    }
    await Promise.all(dropped);
    const { streams } = running.service;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (streams.stats().open > 0 || streams.stats().flushesInFlight > 0)) await sleep(50);
    expect(streams.stats()).toEqual({ open: 0, timers: 0, flushesInFlight: 0, streams: [] });
    expect((await running.service.metrics.queueDepth.get()).values[0].value).toBe(0);
    expect([await metricValue("sutra_streams_open"), await metricValue("sutra_stream_pending_chunks")]).toEqual([0, 0]);
    await sleep(200);
    expect(timeouts()).toBeLessThanOrEqual(timersBefore);
    for (const socket of sockets) expect(socket.readyState).toBe(WebSocket.CLOSED);
  });
});
