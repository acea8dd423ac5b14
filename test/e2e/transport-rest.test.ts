import http2 from "node:http2";
import net from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ERROR_TABLE } from "../../src/api/error-table.js";
import { ERROR_REASONS } from "../../src/domain/errors.js";
import { FAKE_MODEL_ID, fakeEncodings, fakeVector, startTestServer } from "./transport-fixtures.js";
import type { TestServer } from "./transport-fixtures.js";

let server: TestServer;

beforeEach(async () => {
  server = await startTestServer();
});

afterEach(async () => {
  await server.close();
});

interface RestAnswer {
  status: number;
  headers: Headers;
  body: any;
}

async function rest(path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<RestAnswer> {
  const body = init.body === undefined ? undefined : typeof init.body === "string" ? init.body : JSON.stringify(init.body);
  const response = await fetch(server.baseUrl + path, {
    method: init.method ?? (body === undefined ? "GET" : "POST"),
    headers: { "content-type": "application/json", ...init.headers },
    body,
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === "" ? undefined : JSON.parse(text) };
}

/** Asserts the REST error envelope and returns its `error` object. */
function expectError(answer: RestAnswer, status: number, code: string): { message: string; details: Record<string, unknown> } {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  expect(answer.headers.get("content-type")).toMatch(/^application\/json/);
  expect(answer.body.error.code).toBe(code);
  expect(answer.body.error.request_id).toBe(answer.headers.get("x-request-id"));
  expect(typeof answer.body.error.message).toBe("string");
  return answer.body.error;
}

const asFloat32 = (values: number[]) => Array.from(Float32Array.from(values));

describe("REST transcoding", () => {
  it("accepts the seed OpenAPI example and answers in the seed shape", async () => {
    const seed = {
      texts: ["The quick brown fox", "jumps over the lazy dog"],
      model: "efficient",
      dimensions: 0,
      config: { quantization: "int8", use_fp16: false, batch_size: 32 },
    };
    const answer = await rest("/v1/embeddings", { body: seed });
    expect(answer.status).toBe(200);
    expect(answer.body.embeddings).toEqual(seed.texts.map((text) => Array.from(fakeVector(text))));
    expect(answer.body.model_info).toMatchObject({ model_id: FAKE_MODEL_ID, dimensions: 64, precision: "int8" });
    expect(answer.body.metadata).toMatchObject({ request_id: answer.headers.get("x-request-id"), hardware_profile: "medium" });
    expect(answer.body.usage).toEqual({ prompt_tokens: 9, total_tokens: 9 });
    expect(answer.body.performance).toMatchObject({ latency_ms: 12.4, queue_ms: 2.2, inference_ms: 7.5, tokenization_ms: 1.6 });
    const [received] = server.embedder.requests;
    expect(received).toMatchObject({
      texts: seed.texts,
      model: "efficient",
      dimensions: 0,
      config: { quantization: "int8", useFp16: false, batchSize: 32 },
      truncate: "end",
      normalize: true,
      embeddingTypes: ["float"],
    });
    expect(received.config).not.toHaveProperty("hardwareProfile");
  });

  it("sends x-request-id (generated, or the client's echoed) and the TEI timing headers", async () => {
    const generated = await rest("/v1/embeddings", { body: { texts: ["a"] } });
    expect(generated.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(generated.body.metadata.request_id).toBe(generated.headers.get("x-request-id"));
    expect(server.embedder.requests[0].requestId).toBe(generated.headers.get("x-request-id"));
    expect(
      ["x-total-time", "x-tokenization-time", "x-queue-time", "x-inference-time"].map((name) => generated.headers.get(name)),
    ).toEqual(["12", "2", "2", "8"]);
    const echoed = await rest("/v1/embeddings", { body: { texts: ["a"] }, headers: { "x-request-id": "client-abc.123" } });
    expect(echoed.headers.get("x-request-id")).toBe("client-abc.123");
    const insane = await rest("/v1/health", { headers: { "x-request-id": "bad id with spaces" } });
    expect(insane.headers.get("x-request-id")).not.toBe("bad id with spaces");
    const failed = await rest("/nowhere", { headers: { "x-request-id": "err-1" } });
    expect(failed.headers.get("x-request-id")).toBe("err-1");
  });

  it("answers every /v1 route under /api/v1 too", async () => {
    const answer = await rest("/api/v1/embeddings", { body: { texts: ["same"] } });
    expect(answer.status).toBe(200);
    expect(answer.body.embeddings).toEqual([Array.from(fakeVector("same"))]);
    expect((await rest("/api/v1/health")).body.status).toBe("healthy");
    expect((await rest("/api/v1/models")).body.models).toHaveLength(2);
  });

  it("accepts proto3 JSON names and enum names, and renders other encodings as objects", async () => {
    const answer = await rest("/v1/embeddings", {
      body: { texts: ["x"], dimensions: 128, embeddingTypes: ["EMBEDDING_TYPE_INT8", "ubinary"], config: { hardwareProfile: "HARDWARE_PROFILE_AUTO" } },
    });
    expect(answer.status).toBe(200);
    const expected = fakeEncodings("x", { dimensions: 128, embeddingTypes: ["int8", "ubinary"] });
    expect(answer.body.embeddings).toEqual([{ int8: Array.from(expected.int8 ?? []), ubinary: Array.from(expected.ubinary ?? []) }]);
    expect(server.embedder.requests[0]).toMatchObject({ dimensions: 128, embeddingTypes: ["int8", "ubinary"], config: { hardwareProfile: "auto" } });
  });

  it("lists models with the dimensions and hardware_profile filters from the query", async () => {
    const all = await rest("/v1/models");
    expect(all.body.models.map((model: { id: string }) => model.id)).toEqual([FAKE_MODEL_ID, "fake/big-1024"]);
    expect(all.body.models[0]).toMatchObject({ status: "loaded", hardware_profiles: ["auto", "minimal", "low", "medium"], max_tokens: 128 });
    const byDimensions = await rest("/v1/models?dimensions=1024");
    expect(byDimensions.body.models.map((model: { id: string }) => model.id)).toEqual(["fake/big-1024"]);
    const byProfile = await rest("/v1/models?hardware_profile=minimal");
    expect(byProfile.body.models.map((model: { id: string }) => model.id)).toEqual([FAKE_MODEL_ID]);
    const byBoth = await rest("/v1/models?hardwareProfile=HARDWARE_PROFILE_H100&dimensions=64");
    expect(byBoth.body.models).toEqual([]);
    expectError(await rest("/v1/models?hardware_profile=laptop"), 400, "INVALID_ARGUMENT");
  });

  it.each([
    ["healthy", 200],
    ["degraded", 200],
    ["unhealthy", 503],
  ] as const)("answers GET /v1/health for a %s server with %i", async (state, status) => {
    server.embedder.healthState = state;
    const answer = await rest("/v1/health");
    expect(answer.status).toBe(status);
    expect(answer.body).toMatchObject({
      status: state,
      checks: { models_available: state !== "unhealthy", workers: { ready: 2, total: 2, replaced: 0 } },
      performance: { avg_latency_ms: 3.5, requests_per_second: 10 },
      cache: { enabled: false, entries: 0 },
      hardware_profile: "medium",
      default_model: FAKE_MODEL_ID,
    });
  });

  it("answers the not-yet-implemented routes with NOT_IMPLEMENTED, %2F ids included", async () => {
    const download = expectError(await rest("/v1/models/BAAI%2Fbge-small-en-v1.5/download", { body: {} }), 501, "NOT_IMPLEMENTED");
    expect(download.details).toEqual({ rpc: "sutra.embedder.v1.EmbedderService/DownloadModel" });
  });

  it("streams /api/v1/embeddings/stream as NDJSON records {index, embedding} and refuses a bad request with a status", async () => {
    const response = await fetch(`${server.baseUrl}/api/v1/embeddings/stream`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/x-ndjson" },
      body: JSON.stringify({ texts: ["left", "right"] }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/x-ndjson; charset=utf-8");
    const records = (await response.text()).trimEnd().split("\n").map((line) => JSON.parse(line));
    expect(records.map((record) => record.index)).toEqual([0, 1]);
    expect(records.map((record) => record.embedding)).toEqual([Array.from(fakeVector("left")), Array.from(fakeVector("right"))]);
    expect(records[0].model_info.model_id).toBe(FAKE_MODEL_ID);
    expectError(await rest("/api/v1/embeddings/stream", { body: { texts: [] } }), 400, "EMPTY_INPUT");
  });

  it("answers an h2c upgrade offer in HTTP/1.1 as before, while the WebSocket route takes upgrades", async () => {
    const exchange = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = net.connect(server.port, "127.0.0.1", () => socket.write(request));
        let answer = "";
        socket.on("data", (bytes) => {
          answer += bytes.toString("latin1");
          if (answer.includes("\r\n\r\n")) {
            socket.destroy();
            resolve(answer);
          }
        });
        socket.on("error", reject);
      });
    const h2c = await exchange(
      "GET /v1/health HTTP/1.1\r\nhost: localhost\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    );
    expect(h2c).toMatch(/^HTTP\/1\.1 200 /);
    const webSocket = await exchange(
      "GET /api/v1/embeddings/ws HTTP/1.1\r\nhost: localhost\r\nconnection: Upgrade\r\nupgrade: websocket\r\n" +
        "sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nx-request-id: ws-1\r\n\r\n",
    );
    expect(webSocket).toMatch(/^HTTP\/1\.1 101 /);
    expect(webSocket.toLowerCase()).toContain("x-request-id: ws-1");
  });

  it("serves REST over cleartext HTTP/2 on the same port", async () => {
    const session = http2.connect(server.baseUrl);
    try {
      const stream = session.request({ ":method": "POST", ":path": "/v1/embeddings", "content-type": "application/json" });
      stream.end(JSON.stringify({ texts: ["h2"] }));
      const [headers, body] = await new Promise<[http2.IncomingHttpHeaders, string]>((resolve, reject) => {
        let text = "";
        let responseHeaders: http2.IncomingHttpHeaders = {};
        stream.on("response", (received) => (responseHeaders = received));
        stream.on("data", (chunk: Buffer) => (text += chunk.toString()));
        stream.on("end", () => resolve([responseHeaders, text]));
        stream.on("error", reject);
      });
      expect(headers[":status"]).toBe(200);
      expect(headers["x-total-time"]).toBe("12");
      expect(JSON.parse(body).embeddings).toEqual([Array.from(fakeVector("h2"))]);
    } finally {
      session.close();
    }
  });
});

describe("REST bad input", () => {
  const cases: Array<[string, () => Promise<RestAnswer>, number, string, Record<string, unknown>?]> = [
    ["no texts field", () => rest("/v1/embeddings", { body: { model: "efficient" } }), 400, "EMPTY_INPUT"],
    ["an empty texts list", () => rest("/v1/embeddings", { body: { texts: [] } }), 400, "EMPTY_INPUT"],
    ["an empty body", () => rest("/v1/embeddings", { method: "POST", body: "" }), 400, "EMPTY_INPUT"],
    [
      "2049 texts",
      () => rest("/v1/embeddings", { body: { texts: Array.from({ length: 2049 }, (_, index) => `t${index}`) } }),
      400,
      "TOO_MANY_INPUTS",
      { count: 2049, limit: 2048 },
    ],
    ["an empty string among texts", () => rest("/v1/embeddings", { body: { texts: ["a", "b", ""] } }), 400, "EMPTY_INPUT", { index: 2 }],
    [
      "dimensions 8000",
      () => rest("/v1/embeddings", { body: { texts: ["a"], dimensions: 8000 } }),
      400,
      "INVALID_DIMENSIONS",
      { dimensions: 8000, min: 64, max: 4096 },
    ],
    ["batch_size 0", () => rest("/v1/embeddings", { body: { texts: ["a"], config: { batch_size: 0 } } }), 400, "INVALID_ARGUMENT", { field: "config.batch_size" }],
    ["batch_size 257", () => rest("/v1/embeddings", { body: { texts: ["a"], config: { batch_size: 257 } } }), 400, "INVALID_ARGUMENT"],
    ["malformed JSON", () => rest("/v1/embeddings", { body: '{"texts": ["a"' }), 400, "INVALID_ARGUMENT"],
    ["a JSON array body", () => rest("/v1/embeddings", { body: '["a"]' }), 400, "INVALID_ARGUMENT"],
    ["texts as a string", () => rest("/v1/embeddings", { body: { texts: "a" } }), 400, "INVALID_ARGUMENT"],
    ["dimensions as a string", () => rest("/v1/embeddings", { body: { texts: ["a"], dimensions: "big" } }), 400, "INVALID_ARGUMENT"],
    ["config as a list", () => rest("/v1/embeddings", { body: { texts: ["a"], config: [1] } }), 400, "INVALID_ARGUMENT"],
    ["an unknown quantization word", () => rest("/v1/embeddings", { body: { texts: ["a"], config: { quantization: "int2" } } }), 400, "INVALID_ARGUMENT", { field: "config.quantization" }],
    ["an unknown model", () => rest("/v1/embeddings", { body: { texts: ["a"], model: "no-such-model" } }), 404, "UNKNOWN_MODEL", { model: "no-such-model" }],
    ["an unknown route", () => rest("/v1/embedings", { body: { texts: ["a"] } }), 404, "ROUTE_NOT_FOUND", { method: "POST", path: "/v1/embedings" }],
    ["a known path with the wrong method", () => rest("/v1/embeddings"), 404, "ROUTE_NOT_FOUND"],
    ["the root path with POST (GET / is the playground page)", () => rest("/", { body: { texts: ["a"] } }), 404, "ROUTE_NOT_FOUND", { method: "POST", path: "/" }],
  ];

  it.each(cases)("rejects %s", async (_name, send, status, code, details) => {
    const error = expectError(await send(), status, code);
    if (details !== undefined) expect(error.details).toMatchObject(details);
    const after = await rest("/v1/embeddings", { body: { texts: ["still fine"] } });
    expect(after.status).toBe(200);
    expect((await rest("/v1/health")).body.status).toBe("healthy");
  });

  it("rejects a body over the size limit, declared or streamed, with PAYLOAD_TOO_LARGE 413", async () => {
    const big = JSON.stringify({ texts: ["x".repeat(1024 * 1024)] });
    const declared = expectError(await rest("/v1/embeddings", { body: big }), 413, "PAYLOAD_TOO_LARGE");
    expect(declared.details).toEqual({ limit: 1024 * 1024, size: Buffer.byteLength(big) });
    const chunks = [Buffer.from('{"texts": ["'), Buffer.alloc(1024 * 1024 + 10, "y"), Buffer.from('"]}')];
    const response = await fetch(`${server.baseUrl}/v1/embeddings`, {
      method: "POST",
      body: new ReadableStream({
        pull(controller) {
          const chunk = chunks.shift();
          if (chunk === undefined) controller.close();
          else controller.enqueue(chunk);
        },
      }),
      duplex: "half",
    } as RequestInit);
    expect(response.status).toBe(413);
    expect((await response.json()).error.code).toBe("PAYLOAD_TOO_LARGE");
    expect((await rest("/v1/embeddings", { body: { texts: ["after"] } })).status).toBe(200);
    expect(server.embedder.requests.map((request) => request.texts)).toEqual([["after"]]);
  });

  it.each(ERROR_REASONS)("answers a pipeline %s with its status from the table", async (reason) => {
    const answer = await rest("/v1/embeddings", { body: { texts: ["a"], model: `fail:${reason}` } });
    const error = expectError(answer, ERROR_TABLE[reason].httpStatus, reason);
    expect(error).toMatchObject({ message: `forced ${reason}`, details: { forced: true } });
    expect(answer.headers.get("retry-after")).toBe("3");
  });

  it("cancels the embedder's work when the client goes away, and stays healthy", async () => {
    const abort = new AbortController();
    const call = fetch(`${server.baseUrl}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ texts: ["a"], model: "slow" }),
      signal: abort.signal,
    });
    await expect.poll(() => server.embedder.requests.length).toBe(1);
    abort.abort();
    await expect(call).rejects.toThrow();
    await expect.poll(() => server.embedder.cancelled).toBe(1);
    expect((await rest("/v1/health")).status).toBe(200);
  });

  it("sends no embedding for inputs that fail validation", async () => {
    await rest("/v1/embeddings", { body: { texts: [] } });
    await rest("/v1/embeddings", { body: { texts: ["a"], dimensions: 8000 } });
    expect(server.embedder.requests).toEqual([]);
  });

  it("floats stay float32 through JSON", async () => {
    const answer = await rest("/v1/embeddings", { body: { texts: ["precision"] } });
    expect(asFloat32(answer.body.embeddings[0])).toEqual(Array.from(fakeVector("precision")));
  });
});
