import { performance } from "node:perf_hooks";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { chromium, type Browser } from "playwright-core";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { browserSuiteTitle, CHROMIUM, CHROMIUM_FLAGS, hasChromium } from "../support/chromium.js";
import { startRealService, type RunningService } from "../support/real-service.js";

const API_KEY = "browser-key-4f9c2a7e1d";
const TEXTS = ["The cat sat on the mat.", "A kitten is resting on the rug.", "Stock markets fell sharply on Monday."];

const browserTitle = browserSuiteTitle("a headless Chromium page authenticates on the WebSocket with the bearer subprotocol");

interface ServerMessage {
  id: string;
  type: string;
  payload: Record<string, any>;
}

/** One client request in the envelope `{id, type: "request", timestamp, payload: {action, ...}}`. */
function request(id: string, action: string, payload: object = {}): string {
  return JSON.stringify({ id, type: "request", timestamp: new Date().toISOString(), payload: { action, ...payload } });
}

/** Opens a ws client with `protocols`; resolves once open, or with the refusal's HTTP status. */
async function open(url: string, protocols: string[]): Promise<{ socket: WebSocket; messages: ServerMessage[]; closed: Promise<number> } | { status: number }> {
  const socket = new WebSocket(url, protocols);
  const messages: ServerMessage[] = [];
  socket.on("message", (data) => messages.push(JSON.parse(String(data)) as ServerMessage));
  const closed = new Promise<number>((resolve) => socket.once("close", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    socket.once("open", () => resolve({ socket, messages, closed }));
    socket.once("unexpected-response", (_request, response) => resolve({ status: response.statusCode ?? 0 }));
    socket.once("error", reject);
  });
}

async function waitFor(messages: ServerMessage[], test: (message: ServerMessage) => boolean): Promise<ServerMessage> {
  const deadline = performance.now() + 20_000;
  while (performance.now() < deadline) {
    const found = messages.find(test);
    if (found !== undefined) return found;
    await sleep(10);
  }
  throw new Error("no such message within 20 s");
}

describe("WebSocket authentication (api-key mode, real server)", () => {
  let running: RunningService;
  let wsUrl: string;
  const logLines: string[] = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    });
    running = await startRealService({ authMode: "api-key", apiKeys: API_KEY }, pino({ level: "debug" }, sink));
    wsUrl = `${running.baseUrl.replace("http:", "ws:")}/v1/embeddings/ws`;
  }, 120_000);
  afterAll(() => running?.stop());

  it("admits the subprotocols [sutra.v1, bearer.<key>], selects sutra.v1 and streams; a wrong bearer is refused with 401 before any message", async () => {
    const admitted = await open(wsUrl, ["sutra.v1", `bearer.${API_KEY}`]);
    if ("status" in admitted) throw new Error(`refused with ${admitted.status}`);
    try {
      expect(admitted.socket.protocol).toBe("sutra.v1");
      admitted.socket.send(request("s", "stream_embed", { config: { buffer_size: 2 } }));
      admitted.socket.send(request("c", "add_chunk", { chunk_id: "one", text: "authenticated", is_final: true }));
      expect((await waitFor(admitted.messages, (message) => message.payload.action === "stream_end")).payload).toMatchObject({ chunks_processed: 1 });
      expect(admitted.messages.find((message) => message.payload.chunk_id === "one")?.payload.embedding).toHaveLength(512);
    } finally {
      admitted.socket.close();
    }
    expect(await open(wsUrl, ["sutra.v1", "bearer.not-the-key"])).toEqual({ status: 401 });
    expect(await open(wsUrl, [])).toEqual({ status: 401 });
  });

  it("a sutra.v1 upgrade without credentials authenticates with the handshake's token; any other first request, or a wrong token, is UNAUTHENTICATED and closed (1008)", async () => {
    const early = await open(wsUrl, ["sutra.v1"]);
    if ("status" in early) throw new Error(`refused with ${early.status}`);
    early.socket.send(request("s", "stream_embed"));
    expect(await waitFor(early.messages, (message) => message.type === "error")).toMatchObject({ id: "s", payload: { error_code: "UNAUTHENTICATED" } });
    expect(await early.closed).toBe(1008);

    const wrong = await open(wsUrl, ["sutra.v1"]);
    if ("status" in wrong) throw new Error(`refused with ${wrong.status}`);
    wrong.socket.send(request("h", "handshake", { token: "not-the-key" }));
    expect(await waitFor(wrong.messages, (message) => message.type === "error")).toMatchObject({ id: "h", payload: { error_code: "UNAUTHENTICATED" } });
    expect(await wrong.closed).toBe(1008);

    const right = await open(wsUrl, ["sutra.v1"]);
    if ("status" in right) throw new Error(`refused with ${right.status}`);
    try {
      right.socket.send(request("h", "handshake", { session_id: "browser-1", protocol_version: "1.0", token: API_KEY }));
      right.socket.send(request("s", "stream_embed", { config: { buffer_size: 2 } }));
      right.socket.send(request("c", "add_chunk", { chunk_id: "one", text: "authenticated in the handshake", is_final: true }));
      expect((await waitFor(right.messages, (message) => message.payload.action === "handshake")).payload).toMatchObject({ session_id: "browser-1" });
      expect((await waitFor(right.messages, (message) => message.payload.action === "stream_end")).payload).toMatchObject({ chunks_processed: 1 });
    } finally {
      right.socket.close();
    }
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.filter((line) => line.includes(API_KEY))).toEqual([]);
  });

  describe.skipIf(!hasChromium)(browserTitle, () => {
    let browser: Browser;

    beforeAll(async () => {
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
    });
    afterAll(() => browser?.close());

    it("streams 3 texts with new WebSocket(url, [sutra.v1, bearer.<key>]) and gets the unary vectors; a wrong key does not open", async () => {
      const page = await browser.newPage();
      expect((await page.goto(`${running.baseUrl}/v1/health`))?.status()).toBe(200);
      const outcome = await page.evaluate(
        ({ url, key, texts }) =>
          new Promise<{ protocol: string; messages: ServerMessage[]; refusedCode: number }>((resolve, reject) => {
            const messages: ServerMessage[] = [];
            // The page's own WebSocket (the name WebSocket in this file is the ws library's).
            const PageSocket = globalThis.WebSocket;
            const socket = new PageSocket(url, ["sutra.v1", `bearer.${key}`]);
            const send = (id: string, action: string, payload: object) =>
              socket.send(JSON.stringify({ id, type: "request", timestamp: new Date().toISOString(), payload: { action, ...payload } }));
            socket.onerror = () => reject(new Error("the authenticated socket failed"));
            socket.onopen = () => {
              send("h", "handshake", { session_id: "page-1", protocol_version: "1.0", client_capabilities: {} });
              send("s", "stream_embed", { config: { buffer_size: 4, max_latency_ms: 20 } });
              texts.forEach((text, index) => send(`c${index}`, "add_chunk", { chunk_id: `c${index}`, text, position: index, is_final: index === texts.length - 1 }));
            };
            socket.onmessage = (event) => {
              const message = JSON.parse(String(event.data)) as ServerMessage;
              if (message.type === "ping") socket.send(JSON.stringify({ id: `pong-${message.id}`, type: "pong", timestamp: new Date().toISOString(), payload: { ping_id: message.id } }));
              messages.push(message);
              if (message.payload.action !== "stream_end") return;
              const protocol = socket.protocol;
              socket.close();
              const refused = new PageSocket(url, ["sutra.v1", "bearer.wrong-key"]);
              refused.onopen = () => reject(new Error("a wrong key opened"));
              refused.onclose = (close) => resolve({ protocol, messages, refusedCode: close.code });
            };
          }),
        { url: `${running.baseUrl.replace("http:", "ws:")}/v1/embeddings/ws`, key: API_KEY, texts: TEXTS },
      );
      expect(outcome.protocol).toBe("sutra.v1");
      expect(outcome.refusedCode).toBe(1006);
      expect(outcome.messages.find((message) => message.payload.action === "handshake")?.payload).toMatchObject({ session_id: "page-1", protocol_version: "1.0" });
      expect(outcome.messages.find((message) => message.payload.action === "stream_end")?.payload).toMatchObject({ chunks_processed: TEXTS.length });
      const unary = await fetch(`${running.baseUrl}/v1/embeddings`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": API_KEY },
        body: JSON.stringify({ texts: TEXTS }),
      });
      const expected = ((await unary.json()) as { embeddings: number[][] }).embeddings;
      const chunks = outcome.messages.filter((message) => message.type === "response" && message.payload.chunk_id !== undefined);
      expect(chunks).toHaveLength(TEXTS.length);
      for (const chunk of chunks) {
        const index = chunk.payload.metadata.sequence_position as number;
        const worst = Math.max(...(chunk.payload.embedding as number[]).map((value, position) => Math.abs(value - expected[index][position])));
        expect(worst).toBeLessThanOrEqual(1e-6);
      }
      await page.close();
    });
  });
});
