import net from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { signalGroup, startServeProcess, type ServeProcess } from "../support/serve-process.js";

/** An HTTP/1.1 request whose headers and half of its body are sent now, the rest on `finish()`. */
function slowRequest(port: number, body: string): Promise<{ finish(): void; answer: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      const half = Math.floor(body.length / 2);
      socket.write(`POST /v1/embeddings HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, half)}`);
      let received = "";
      const answer = new Promise<string>((settle) => {
        socket.on("data", (chunk) => {
          received += chunk.toString("utf8");
        });
        socket.on("close", () => settle(received));
      });
      resolve({ finish: () => socket.end(body.slice(half)), answer });
    });
    socket.once("error", reject);
  });
}

let server: ServeProcess | undefined;
afterEach(() => {
  if (server !== undefined) signalGroup(server.child, "SIGKILL");
  server = undefined;
});

describe("graceful shutdown on SIGTERM (sutra serve in a child process)", () => {
  it("finishes accepted requests, refuses new ones with SHUTTING_DOWN / UNAVAILABLE, and exits 0 within 10 s", async () => {
    server = startServeProcess();
    const listening = await server.waitFor("listening");
    const port = listening.address!.port;
    const baseUrl = `http://127.0.0.1:${port}`;
    await server.waitFor("default model loaded");

    const slow = await slowRequest(port, JSON.stringify({ texts: ["arrives after SIGTERM"] }));
    // Four clients send requests back to back, so some are always in flight, until the server refuses them.
    const texts = Array.from({ length: 16 }, (_, index) => `request text ${index} ${"the quick brown fox jumps over the lazy dog ".repeat(5)}`);
    interface Outcome { sentAt: number; endedAt: number; status?: number; code?: string; error?: string }
    const outcomes: Outcome[] = [];
    const client = async (): Promise<void> => {
      for (;;) {
        const sentAt = performance.now();
        try {
          const response = await fetch(`${baseUrl}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ texts }) });
          const body = (await response.json()) as { embeddings?: number[][]; error?: { code: string } };
          outcomes.push({ sentAt, endedAt: performance.now(), status: response.status, code: body.error?.code ?? String(body.embeddings?.length) });
          if (response.status !== 200) return;
        } catch (error) {
          outcomes.push({ sentAt, endedAt: performance.now(), error: String(((error as Error).cause as { code?: string })?.code ?? error) });
          return;
        }
      }
    };
    const clients = Array.from({ length: 4 }, client);
    while (outcomes.filter((outcome) => outcome.status === 200).length < 4) await new Promise((resolve) => setTimeout(resolve, 20));
    const signalledAt = performance.now();
    signalGroup(server.child, "SIGTERM");
    await server.waitFor("draining", 30_000);
    const drainingSeenAt = performance.now();

    slow.finish();
    const refused = await slow.answer;
    expect(refused).toMatch(/^HTTP\/1\.1 503 /);
    expect(refused).toContain('"code":"SHUTTING_DOWN"');

    const fresh = await fetch(`${baseUrl}/v1/health`).then((response) => `status ${response.status}`, (error: Error) => String((error.cause as { code?: string })?.code ?? error.message));
    expect(["ECONNREFUSED", "status 503"]).toContain(fresh);
    const grpc = createClient(EmbedderService, createGrpcTransport({ baseUrl }));
    const grpcError = await grpc.generateEmbeddings({ texts: ["new"] }).then(() => undefined, (reason: unknown) => reason);
    expect(ConnectError.from(grpcError).code).toBe(Code.Unavailable);

    await Promise.all(clients);
    // Nothing sent before the signal was dropped: it was answered in full, or (not yet read) refused with SHUTTING_DOWN.
    const before = outcomes.filter((outcome) => outcome.sentAt < signalledAt);
    for (const outcome of before) {
      expect(outcome.error, JSON.stringify(outcome)).toBeUndefined();
      expect([{ status: 200, code: "16" }, { status: 503, code: "SHUTTING_DOWN" }]).toContainEqual({ status: outcome.status, code: outcome.code });
    }
    // Requests in flight at the signal finished during the drain.
    const drained = before.filter((outcome) => outcome.endedAt > signalledAt && outcome.status === 200);
    expect(drained.length).toBeGreaterThan(0);
    // Between the signal and its log line the server may still accept; once it said "draining", it refuses.
    for (const outcome of outcomes.filter((item) => item.sentAt >= drainingSeenAt && item.status !== undefined)) {
      expect({ status: outcome.status, code: outcome.code }).toEqual({ status: 503, code: "SHUTTING_DOWN" });
    }

    const exit = await server.exited;
    // main exits 0 right after "stopped", or 1 after "drain timed out".
    const drainMs = exit.at - signalledAt;
    expect(drainMs).toBeLessThan(10_000);
    expect(exit.code).toBe(0);
    expect(server.lines.some((line) => line.msg === "stopped")).toBe(true);
    expect(server.lines.some((line) => line.msg === "drain timed out; exiting")).toBe(false);
    console.log(`drain: SIGTERM to exit ${Math.round(drainMs)} ms; ${drained.length} in-flight requests finished during the drain; ${outcomes.length} requests in all`);
  }, 90_000);
});
