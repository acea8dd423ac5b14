import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { startChildService, type ChildService, type ChildServiceStats } from "../support/child-service.js";

const KB = 1024;
const MB = 1024 * 1024;
/** About 1 MB of id: the server's answer carries the id of the request it answers, so each answer is about 1 MB too. */
const LONG_ID = "x".repeat(MB);
const REQUESTS = 400;


/** A WebSocket client that keeps every message it gets and how its connection closed. */
async function connect(port: number) {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/embeddings/ws`);
  const messages: string[] = [];
  socket.on("message", (data) => messages.push(String(data)));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.once("close", (code, reason) => resolve({ code, reason: String(reason) })));
  socket.on("error", () => undefined);
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  const next = async (count: number, timeoutMs = 10_000): Promise<Array<{ id: string; type: string; payload: Record<string, unknown> }>> => {
    const deadline = performance.now() + timeoutMs;
    while (messages.length < count && performance.now() < deadline) await sleep(10);
    return messages.splice(0, count).map((text) => JSON.parse(text) as { id: string; type: string; payload: Record<string, unknown> });
  };
  return { socket, messages, closed, next };
}

/** One client request in the envelope `{id, type: "request", timestamp, payload: {action, ...}}`. */
function request(id: string, action: string, payload: object = {}): string {
  return JSON.stringify({ id, type: "request", timestamp: "", payload: { action, ...payload } });
}

/** Proves the server serves a new client normally: its handshake and a get_state are answered. */
async function servedNormally(port: number): Promise<void> {
  const client = await connect(port);
  try {
    client.socket.send(request("h", "handshake", { session_id: "s-7", protocol_version: "1.0" }));
    client.socket.send(request("g", "get_state"));
    const [handshake, state] = await client.next(2);
    expect(handshake).toMatchObject({ id: "h", type: "response", payload: { action: "handshake", session_id: "s-7", protocol_version: "1.0" } });
    expect(state).toMatchObject({ id: "g", type: "response", payload: { action: "state", session_id: "s-7", is_streaming: false } });
  } finally {
    client.socket.terminate();
  }
}

/**
 * Sends up to `count` get_state requests with ids of ~1 MB from a client that
 * reads nothing, keeping at most 4 MB in the client's own buffer. Returns how
 * many it sent and whether the server stopped taking them (the client's
 * buffer made no progress for 1 s) before all were sent and taken.
 */
async function floodRequests(socket: WebSocket, count: number): Promise<{ sent: number; stalled: boolean }> {
  let sent = 0;
  let lastBuffered = -1;
  let stillSince = performance.now();
  const deadline = performance.now() + 120_000;
  while (socket.readyState === WebSocket.OPEN && performance.now() < deadline) {
    while (sent < count && socket.bufferedAmount < 4 * MB) {
      socket.send(request(`${sent}-${LONG_ID}`, "get_state"));
      sent++;
    }
    if (sent === count && socket.bufferedAmount === 0) return { sent, stalled: false };
    await sleep(50);
    if (socket.bufferedAmount !== lastBuffered) {
      lastBuffered = socket.bufferedAmount;
      stillSince = performance.now();
    } else if (performance.now() - stillSince >= 1_000) {
      return { sent, stalled: true };
    }
  }
  return { sent, stalled: true };
}

async function waitForConnections(server: { stats(): Promise<ChildServiceStats> }, expected: number, timeoutMs = 15_000): Promise<ChildServiceStats> {
  const deadline = performance.now() + timeoutMs;
  let stats = await server.stats();
  while (stats.connections !== expected && performance.now() < deadline) {
    await sleep(100);
    stats = await server.stats();
  }
  return stats;
}

const megabytes = (bytes: number) => (bytes / MB).toFixed(0);

describe("WebSocket: what a client that stops reading can make the server hold (64 KiB bound)", () => {
  let server: ChildService;

  beforeAll(async () => {
    server = await startChildService({ SUTRA_WS_MAX_BUFFERED_BYTES: String(64 * KB) });
    await servedNormally(server.port);
  }, 120_000);
  afterAll(() => server?.stop());

  it("stops reading a client that floods 400 requests answered in ~1 MB each and reads nothing, closes it with 1008, frees it, and serves the next client", async () => {
    const before = await server.stats();
    const client = await connect(server.port);
    client.socket.send(request("h", "handshake"));
    expect((await client.next(1))[0]).toMatchObject({ type: "response", payload: { action: "handshake" } });
    client.socket.pause();
    const { sent, stalled } = await floodRequests(client.socket, REQUESTS);
    const during = await server.stats();
    expect(stalled).toBe(true);
    expect(sent).toBeLessThan(REQUESTS);
    // The server holds at most the bound twice, one request being read and one answer: nothing like 400 MB of answers.
    expect(during.rss - before.rss).toBeLessThan(64 * MB);

    client.socket.resume();
    const closed = await Promise.race([client.closed, sleep(30_000).then(() => ({ code: 0, reason: "no close within 30 s" }))]);
    expect(closed.code).toBe(1008);
    const answers = client.messages.filter((text) => text.includes('"action":"state"')).length;
    expect(answers).toBeLessThan(16);
    const after = await waitForConnections(server, 0);
    expect(after.connections).toBe(0);
    console.info(`64 KiB bound: the client sent ${sent} requests before the server stopped taking them, got ${answers} answers and close ${closed.code}; ` +
      `server RSS ${megabytes(before.rss)} -> ${megabytes(during.rss)} -> ${megabytes(after.rss)} MB`);
    await servedNormally(server.port);
  }, 180_000);

  it("answers small messages in small answers: errors repeat at most 64 characters of a bad type or action, session ids are short", async () => {
    const client = await connect(server.port);
    try {
      const longType = `{"id":"t","type":"${"y".repeat(100 * KB)}","payload":{}}`;
      client.socket.send(longType);
      const longAction = request("a", "z".repeat(100 * KB));
      client.socket.send(longAction);
      const longSession = request("h", "handshake", { session_id: "s".repeat(100 * KB), client_capabilities: { note: "é\u00e9" } });
      client.socket.send(longSession);
      client.socket.send(request("ok", "get_state"));
      while (client.messages.length < 4) await sleep(10);
      const [first, second, third, fourth] = client.messages.map((text) => ({ text, answer: JSON.parse(text) as { id: string; type: string; payload: Record<string, unknown> } }));
      expect(first.answer).toMatchObject({ id: "t", type: "error", payload: { error_code: "INVALID_ARGUMENT", details: { field: "type" } } });
      expect(Buffer.byteLength(first.text)).toBeLessThan(1 * KB);
      expect(second.answer).toMatchObject({ id: "a", type: "error", payload: { error_code: "INVALID_ARGUMENT", details: { field: "payload.action" } } });
      expect(Buffer.byteLength(second.text)).toBeLessThan(1 * KB);
      // A session id is repeated in every state answer: a long one would make small requests get large answers.
      expect(third.answer).toMatchObject({ id: "h", type: "error", payload: { error_code: "INVALID_ARGUMENT", details: { field: "session_id" } } });
      expect(Buffer.byteLength(third.text)).toBeLessThan(1 * KB);
      expect(fourth.answer).toMatchObject({ id: "ok", type: "response", payload: { action: "state", is_streaming: false } });
      expect(Buffer.byteLength(fourth.text)).toBeLessThan(1 * KB);
    } finally {
      client.socket.terminate();
    }
    expect((await waitForConnections(server, 0)).connections).toBe(0);
  }, 60_000);
});

describe("WebSocket: a client that stops reading, at the default bound (4 MiB)", () => {
  let server: ChildService;

  beforeAll(async () => {
    server = await startChildService({});
    await servedNormally(server.port);
  }, 120_000);
  afterAll(() => server?.stop());

  it("keeps a flooding client paused with its server-side memory bounded, and frees everything when it leaves", async () => {
    const before = await server.stats();
    const client = await connect(server.port);
    client.socket.pause();
    const { sent, stalled } = await floodRequests(client.socket, REQUESTS);
    await sleep(1_000);
    const during = await server.stats();
    expect(stalled).toBe(true);
    expect(sent).toBeLessThan(REQUESTS);
    expect(during.connections).toBe(1);
    expect(during.rss - before.rss).toBeLessThan(64 * MB);
    client.socket.terminate();
    const after = await waitForConnections(server, 0);
    expect(after.connections).toBe(0);
    console.info(`4 MiB bound: the client sent ${sent} requests of 1 MB before the server stopped reading; server RSS ${megabytes(before.rss)} -> ` +
      `${megabytes(during.rss)} (flooding) -> ${megabytes(after.rss)} MB (after it left), JS heap ${megabytes(before.heapUsed)} -> ${megabytes(during.heapUsed)} -> ` +
      `${megabytes(after.heapUsed)} MB, external ${megabytes(before.external)} -> ${megabytes(during.external)} -> ${megabytes(after.external)} MB`);
    await servedNormally(server.port);
  }, 180_000);
});
