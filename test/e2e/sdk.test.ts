import { execFile } from "node:child_process";
import net from "node:net";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { createNodeClient, errorReason, type NodeProtocol, type NodeSutraClient, type RetryEvent } from "../../src/client/node.js";
import { EmbedderError, type ErrorReason } from "../../src/domain/errors.js";
import type { EmbedRequest, Embedder, EmbedStreamResult } from "../../src/domain/types.js";
import { createFakeEmbedder, fakeVector, startTestServer, type FakeEmbedder, type TestServer } from "./transport-fixtures.js";

/** Failures the next calls of the fake embedder throw, one per call, before it embeds normally again. */
interface Scripted {
  embedder: Embedder;
  fake: FakeEmbedder;
  failures: Array<{ reason: ErrorReason; retryAfterMs?: number }>;
  /** Texts of every call that reached the embedder, failed or not. */
  calls: string[][];
}

/** The fake embedder behind a script of failures (embed and embedStream). */
function scriptedEmbedder(): Scripted {
  const fake = createFakeEmbedder();
  const scripted: Scripted = { fake, failures: [], calls: [], embedder: fake };
  const failNext = (request: EmbedRequest): void => {
    scripted.calls.push([...request.texts]);
    const failure = scripted.failures.shift();
    if (failure) throw new EmbedderError(failure.reason, `scripted ${failure.reason}`, { retryAfterMs: failure.retryAfterMs });
  };
  scripted.embedder = {
    ...fake,
    async embed(request, signal) {
      failNext(request);
      return fake.embed(request, signal);
    },
    async embedStream(request, onItem, signal): Promise<EmbedStreamResult> {
      scripted.calls.push([...request.texts]);
      const failure = scripted.failures.shift();
      if (!failure) return fake.embedStream(request, onItem, signal);
      // Answers the first half, then fails: the SDK must ask again for the rest only.
      const half = Math.floor(request.texts.length / 2);
      const { embeddings, run } = await fake.embed({ ...request, texts: request.texts.slice(0, half) }, signal);
      embeddings.forEach((embedding, index) => onItem({ index, embedding, tokens: 1, run }));
      await new Promise((resolve) => setTimeout(resolve, 20));
      throw new EmbedderError(failure.reason, `scripted ${failure.reason} mid-stream`);
    },
  };
  return scripted;
}

const PROTOCOLS: NodeProtocol[] = ["grpc", "connect", "grpc-web"];

describe("TypeScript SDK (src/client) against a real server on loopback", () => {
  let server: TestServer | undefined;
  let client: NodeSutraClient | undefined;

  afterEach(async () => {
    client?.close();
    client = undefined;
    await server?.close();
    server = undefined;
  });

  async function start(scripted: Scripted, limits = { maxInputs: 2048, maxBodyBytes: 1024 * 1024 }): Promise<TestServer> {
    server = await startTestServer({ embedder: scripted.embedder, limits });
    return server;
  }

  for (const protocol of PROTOCOLS) {
    it(`${protocol}: UNAVAILABLE (SHUTTING_DOWN) twice, then success: the call succeeds after honouring retry-after`, async () => {
      const scripted = scriptedEmbedder();
      scripted.failures.push({ reason: "SHUTTING_DOWN", retryAfterMs: 1000 }, { reason: "SHUTTING_DOWN" });
      const { baseUrl } = await start(scripted);
      const retries: RetryEvent[] = [];
      client = createNodeClient({ baseUrl, protocol, retry: { onRetry: (event) => retries.push(event) } });
      const started = performance.now();
      const response = await client.embed({ texts: ["hello", "world"] });
      const elapsedMs = performance.now() - started;
      expect(response.embeddings.map((embedding) => embedding.values)).toEqual([Array.from(fakeVector("hello")), Array.from(fakeVector("world"))]);
      expect(scripted.calls).toHaveLength(3);
      expect(retries.map((event) => [event.facts.reason, event.facts.code])).toEqual([["SHUTTING_DOWN", 14], ["SHUTTING_DOWN", 14]]);
      expect(retries[0].facts.retryAfterMs).toBe(1000);
      expect(retries[0].delayMs).toBeGreaterThanOrEqual(1000);
      expect(elapsedMs).toBeGreaterThanOrEqual(1000);
    });
  }

  it.each(["OVERLOADED", "RATE_LIMITED", "SHUTTING_DOWN", "WORKER_FAILED", "UPSTREAM_UNAVAILABLE"] as const)("retries %s", async (reason) => {
    const scripted = scriptedEmbedder();
    scripted.failures.push({ reason, retryAfterMs: 0 });
    client = createNodeClient({ baseUrl: (await start(scripted)).baseUrl });
    await client.embed({ texts: ["x"] });
    expect(scripted.calls).toHaveLength(2);
  });

  it.each(["INVALID_ARGUMENT", "EMPTY_INPUT", "INVALID_DIMENSIONS", "INPUT_TOO_LONG", "PAYLOAD_TOO_LARGE", "UPSTREAM_BAD_RESPONSE", "UNKNOWN_MODEL", "FORBIDDEN"] as const)(
    "does not retry %s: one call reaches the server and the error keeps its reason",
    async (reason) => {
      const scripted = scriptedEmbedder();
      scripted.failures.push({ reason }, { reason });
      const retries: RetryEvent[] = [];
      client = createNodeClient({ baseUrl: (await start(scripted)).baseUrl, retry: { onRetry: (event) => retries.push(event) } });
      const failure = await client.embed({ texts: ["x"] }).catch((error: unknown) => error);
      expect(errorReason(failure)).toBe(reason);
      expect(scripted.calls).toHaveLength(1);
      expect(retries).toEqual([]);
    },
  );

  it("gives up after maxAttempts and throws the last failure", async () => {
    const scripted = scriptedEmbedder();
    scripted.failures.push(...Array.from({ length: 5 }, () => ({ reason: "OVERLOADED" as const, retryAfterMs: 0 })));
    client = createNodeClient({ baseUrl: (await start(scripted)).baseUrl, retry: { maxAttempts: 3, initialBackoffMs: 1 } });
    const failure = await client.embed({ texts: ["x"] }).catch((error: unknown) => error);
    expect(errorReason(failure)).toBe("OVERLOADED");
    expect(scripted.calls).toHaveLength(3);
  });

  it("retries a refused connection (UNAVAILABLE without a reason) and reports it", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, "127.0.0.1", () => {
        const { port: free } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(free));
      });
    });
    const retries: RetryEvent[] = [];
    client = createNodeClient({ baseUrl: `http://127.0.0.1:${port}`, retry: { maxAttempts: 3, initialBackoffMs: 1, onRetry: (event) => retries.push(event) } });
    const failure = await client.embed({ texts: ["x"] }).catch((error: unknown) => error);
    expect(errorReason(failure)).toBeUndefined();
    expect(retries.map((event) => [event.facts.code, event.facts.reason])).toEqual([[14, undefined], [14, undefined]]);
  });

  for (const [protocol, total] of [["grpc", 10_000], ["connect", 5000], ["grpc-web", 5000]] as const) {
    it(`${protocol}: a ${total.toLocaleString("en")}-text call is split within the server's limits and reassembled in input order`, async () => {
      const scripted = scriptedEmbedder();
      const { baseUrl } = await start(scripted);
      client = createNodeClient({ baseUrl, protocol, limits: { maxInputs: 2048, maxRequestBytes: 1024 * 1024 }, concurrency: 3 });
      const texts = Array.from({ length: total }, (_, index) => `text number ${index} ${"é".repeat(index % 50)}`);
      const response = await client.embed({ texts, dimensions: 64 });
      const sizes = Array.from({ length: Math.ceil(total / 2048) }, (_, part) => Math.min(2048, total - part * 2048));
      // Parts run 3 at a time, so they may reach the server in any order.
      const calls = [...scripted.calls].sort((a, b) => texts.indexOf(a[0]) - texts.indexOf(b[0]));
      expect(calls.map((call) => call.length)).toEqual(sizes);
      expect(calls.flat().join("\n") === texts.join("\n")).toBe(true);
      expect(response.embeddings).toHaveLength(total);
      for (const index of [0, 1, 2047, 2048, 4095, 4096, total - 1]) expect(response.embeddings[index].values).toEqual(Array.from(fakeVector(texts[index], 64)));
      expect(response.usage?.promptTokens).toBe(texts.reduce((sum, text) => sum + text.split(/\s+/).length, 0));
      expect(response.metadata?.requestId.split(",")).toHaveLength(sizes.length);
    }, 180_000);
  }

  it("splits by bytes too: every request stays under the body limit", async () => {
    const scripted = scriptedEmbedder();
    const { baseUrl } = await start(scripted, { maxInputs: 2048, maxBodyBytes: 256 * 1024 });
    client = createNodeClient({ baseUrl, protocol: "connect", useJson: true, limits: { maxRequestBytes: 256 * 1024 }, concurrency: 1 });
    const texts = Array.from({ length: 300 }, (_, index) => `${index} ${"long \"quoted\" text ".repeat(200)}`);
    const response = await client.embed({ texts });
    expect(scripted.calls.length).toBeGreaterThan(1);
    expect(scripted.calls.flat().join("\n") === texts.join("\n")).toBe(true);
    expect(response.embeddings.map((embedding) => embedding.values[0])).toEqual(texts.map((text) => fakeVector(text)[0]));
  });

  it("a part that fails for good fails the call with its reason, naming the part", async () => {
    const scripted = scriptedEmbedder();
    const { baseUrl } = await start(scripted, { maxInputs: 10, maxBodyBytes: 1024 * 1024 });
    client = createNodeClient({ baseUrl, limits: { maxInputs: 10 }, concurrency: 1 });
    const texts = Array.from({ length: 30 }, (_, index) => (index === 25 ? "" : `t${index}`));
    const failure = await client.embed({ texts }).catch((error: unknown) => error);
    expect(errorReason(failure)).toBe("EMPTY_INPUT");
    expect(String(failure)).toContain("texts 20..29 of the call");
  });

  it("embedStream: an async iterator over 5,000 texts gives every index once; a broken part resends only the unanswered texts", async () => {
    const scripted = scriptedEmbedder();
    scripted.failures.push({ reason: "WORKER_FAILED" });
    const { baseUrl } = await start(scripted);
    client = createNodeClient({ baseUrl, retry: { initialBackoffMs: 1 } });
    const texts = Array.from({ length: 5000 }, (_, index) => `stream text ${index}`);
    const seen = new Map<number, number[]>();
    for await (const message of client.embedStream({ texts })) {
      expect(seen.has(message.index)).toBe(false);
      seen.set(message.index, message.embedding?.values ?? []);
    }
    expect(seen.size).toBe(5000);
    for (const index of [0, 1023, 1024, 2047, 2048, 4999]) expect(seen.get(index)).toEqual(Array.from(fakeVector(texts[index])));
    // Part 1 (2048 texts) failed after answering half; the retry carried the other 1024 only.
    expect(scripted.calls.map((call) => call.length)).toEqual([2048, 1024, 2048, 904]);
    expect(scripted.calls[1]).toEqual(texts.slice(1024, 2048));
  }, 180_000);

  it("the package export sutra-embedder/client/node (esbuild bundle from npm ci) works in plain Node, without a TypeScript loader", async () => {
    const scripted = scriptedEmbedder();
    const { baseUrl } = await start(scripted);
    const program = `
      const { createNodeClient, splitInputs } = await import("sutra-embedder/client/node");
      const client = createNodeClient({ baseUrl: process.argv[1] });
      const response = await client.embed({ texts: ["plain node"] });
      client.close();
      console.log(JSON.stringify({ values: response.embeddings[0].values, parts: splitInputs(["a", "b", "c"], { maxInputs: 2, maxRequestBytes: 1e6 }) }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", program, baseUrl], { cwd: new URL("../..", import.meta.url).pathname });
    const output = JSON.parse(stdout) as { values: number[]; parts: unknown };
    expect(output.values).toEqual(Array.from(fakeVector("plain node")));
    expect(output.parts).toEqual([{ start: 0, count: 2 }, { start: 2, count: 1 }]);
  });
});
