import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { startChildService, type ChildService, type ChildServiceStats } from "../support/child-service.js";

const KB = 1024;
const MB = 1024 * 1024;
/** About 1 MB of padding in a ping's payload. */
const PADDING = "x".repeat(MB);
const PINGS = 400;


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

/** Proves the server serves a new client normally: its handshake and a ping are answered. */
async function servedNormally(port: number): Promise<void> {
  const client = await connect(port);
  try {
    client.socket.send(JSON.stringify({ id: "h", type: "handshake", timestamp: "", payload: {} }));
    client.socket.send(JSON.stringify({ id: "p", type: "ping", timestamp: "", payload: { nonce: 7 } }));
    const [handshake, pong] = await client.next(2);
    expect(handshake).toMatchObject({ id: "h", type: "handshake", payload: { protocol_version: 1 } });
    expect(pong).toMatchObject({ id: "p", type: "pong", payload: { nonce: 7 } });
  } finally {
    client.socket.terminate();
  }
}

/**
 * Sends up to `count` pings of ~1 MB from a client that reads nothing,
 * keeping at most 4 MB in the client's own buffer. Returns how many it sent
 * and whether the server stopped taking them (the client's buffer made no
 * progress for 1 s) before all were sent and taken.
 */
async function floodPings(socket: WebSocket, count: number): Promise<{ sent: number; stalled: boolean }> {
  let sent = 0;
  let lastBuffered = -1;
  let stillSince = performance.now();
  const deadline = performance.now() + 120_000;
  while (socket.readyState === WebSocket.OPEN && performance.now() < deadline) {
    while (sent < count && socket.bufferedAmount < 4 * MB) {
      socket.send(`{"id":"p${sent}","type":"ping","timestamp":"","payload":{"padding":"${PADDING}"}}`);
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

  it("stops reading a client that floods 400 large pings and reads nothing, closes it with 1008, frees it, and serves the next client", async () => {
    const before = await server.stats();
    const client = await connect(server.port);
    client.socket.send(JSON.stringify({ id: "h", type: "handshake", timestamp: "", payload: {} }));
    expect((await client.next(1))[0]).toMatchObject({ type: "handshake" });
    client.socket.pause();
    const { sent, stalled } = await floodPings(client.socket, PINGS);
    const during = await server.stats();
    expect(stalled).toBe(true);
    expect(sent).toBeLessThan(PINGS);
    // The server holds at most the bound twice, one ping being read and one pong: nothing like 400 MB of pongs.
    expect(during.rss - before.rss).toBeLessThan(64 * MB);

    client.socket.resume();
    const closed = await Promise.race([client.closed, sleep(30_000).then(() => ({ code: 0, reason: "no close within 30 s" }))]);
    expect(closed.code).toBe(1008);
    const pongs = client.messages.filter((text) => text.includes('"type":"pong"')).length;
    expect(pongs).toBeLessThan(16);
    const after = await waitForConnections(server, 0);
    expect(after.connections).toBe(0);
    console.info(`64 KiB bound: the client sent ${sent} pings before the server stopped taking them, got ${pongs} pongs and close ${closed.code}; ` +
      `server RSS ${megabytes(before.rss)} -> ${megabytes(during.rss)} -> ${megabytes(after.rss)} MB`);
    await servedNormally(server.port);
  }, 180_000);

  it("answers a ping no larger than it came: a payload that would grow when written out again is refused", async () => {
    const client = await connect(server.port);
    try {
      // 1e20 is written out as 100000000000000000000: echoed as is, the pong would be over 4 times the ping.
      const numbers = `{"id":"big","type":"ping","payload":{"numbers":[${Array.from({ length: 4_000 }, () => "1e20").join(",")}]}}`;
      client.socket.send(numbers);
      const longType = `{"id":"t","type":"${"y".repeat(100 * KB)}","payload":{}}`;
      client.socket.send(longType);
      client.socket.send(JSON.stringify({ id: "ok", type: "ping", timestamp: "", payload: { note: "é\u00e9", values: [1.5, 2] } }));
      while (client.messages.length < 3) await sleep(10);
      const [first, second, third] = client.messages.map((text) => ({ text, answer: JSON.parse(text) as { id: string; type: string; payload: Record<string, unknown> } }));
      expect(first.answer).toMatchObject({ id: "big", type: "error", payload: { error_code: "INVALID_ARGUMENT" } });
      expect(Buffer.byteLength(first.text)).toBeLessThan(Buffer.byteLength(numbers));
      expect(second.answer).toMatchObject({ type: "error", payload: { error_code: "INVALID_ARGUMENT" } });
      expect(Buffer.byteLength(second.text)).toBeLessThan(1 * KB);
      expect(third.answer).toMatchObject({ id: "ok", type: "pong", payload: { note: "éé", values: [1.5, 2] } });
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
    const { sent, stalled } = await floodPings(client.socket, PINGS);
    await sleep(1_000);
    const during = await server.stats();
    expect(stalled).toBe(true);
    expect(sent).toBeLessThan(PINGS);
    expect(during.connections).toBe(1);
    expect(during.rss - before.rss).toBeLessThan(64 * MB);
    client.socket.terminate();
    const after = await waitForConnections(server, 0);
    expect(after.connections).toBe(0);
    console.info(`4 MiB bound: the client sent ${sent} pings of 1 MB before the server stopped reading; server RSS ${megabytes(before.rss)} -> ` +
      `${megabytes(during.rss)} (flooding) -> ${megabytes(after.rss)} MB (after it left), JS heap ${megabytes(before.heapUsed)} -> ${megabytes(during.heapUsed)} -> ` +
      `${megabytes(after.heapUsed)} MB, external ${megabytes(before.external)} -> ${megabytes(during.external)} -> ${megabytes(after.external)} MB`);
    await servedNormally(server.port);
  }, 180_000);
});
