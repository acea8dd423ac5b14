import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Tiktoken } from "js-tiktoken/lite";
import cl100kBase from "js-tiktoken/ranks/cl100k_base";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID } from "../../src/models/builtin.js";
import { loadTokenizer, type Tokenizer } from "../../src/tokenize/index.js";
import { startRealService, type RunningService } from "../support/real-service.js";

const TEXTS = ["The cat sat on the mat.", "Vector search over embeddings ✨", "日本語のテキストも埋め込みます"];

function maxAbsDiff(actual: ArrayLike<number>[], expected: ArrayLike<number>[]): number {
  expect(actual).toHaveLength(expected.length);
  let worst = 0;
  actual.forEach((vector, row) => {
    expect(vector.length).toBe(expected[row].length);
    for (let index = 0; index < vector.length; index++) worst = Math.max(worst, Math.abs(vector[index] - expected[row][index]));
  });
  return worst;
}

describe("OpenAI dialect with the official openai SDK (real server, real model)", () => {
  let running: RunningService;
  let openai: OpenAI;
  let grpcVectors: number[][];
  let tokenizer: Tokenizer;

  beforeAll(async () => {
    running = await startRealService();
    openai = new OpenAI({ apiKey: "unused-in-auth-mode-none", baseURL: `${running.baseUrl}/v1`, maxRetries: 0 });
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
    grpcVectors = (await client.generateEmbeddings({ texts: TEXTS })).embeddings.map((embedding) => embedding.values);
    const manifest = (await import(join(BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID, "sutra-model.json"), { with: { type: "json" } })).default as {
      tokenizer: string;
      maxTokens: number;
    };
    tokenizer = await loadTokenizer(join(BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID, manifest.tokenizer), { maxTokens: manifest.maxTokens });
  });
  afterAll(() => running?.stop());

  it("embeddings.create with the SDK's default (base64) equals gRPC, names the model that ran, counts tokens", async () => {
    const response = await openai.embeddings.create({ model: "text-embedding-3-small", input: TEXTS });
    expect(response.object).toBe("list");
    expect(response.model).toBe(DEFAULT_MODEL_ID);
    expect(response.data.map((item) => item.index)).toEqual([0, 1, 2]);
    expect(maxAbsDiff(response.data.map((item) => item.embedding), grpcVectors)).toBeLessThanOrEqual(1e-6);
    const tokens = tokenizer.encodeBatch(TEXTS).reduce((sum, encoding) => sum + encoding.ids.length, 0);
    expect(response.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });
  });

  it("sends base64 on the wire when asked for nothing, and it is little-endian float32", async () => {
    const raw = await fetch(`${running.baseUrl}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "text-embedding-ada-002", input: TEXTS[0], encoding_format: "base64" }),
    });
    const body = (await raw.json()) as { data: Array<{ object: string; embedding: string }> };
    expect(body.data[0].object).toBe("embedding");
    const bytes = Buffer.from(body.data[0].embedding, "base64");
    expect(bytes.byteLength).toBe(grpcVectors[0].length * 4);
    const decoded = Array.from({ length: bytes.byteLength / 4 }, (_, index) => bytes.readFloatLE(index * 4));
    expect(maxAbsDiff([decoded], [grpcVectors[0]])).toBe(0);
  });

  it("embeddings.create with encoding_format float equals gRPC; a single string works", async () => {
    const response = await openai.embeddings.create({ model: "text-embedding-3-large", input: TEXTS, encoding_format: "float", user: "user-1" });
    expect(maxAbsDiff(response.data.map((item) => item.embedding), grpcVectors)).toBeLessThanOrEqual(1e-6);
    const single = await openai.embeddings.create({ model: DEFAULT_MODEL_ID, input: TEXTS[1], encoding_format: "float" });
    expect(maxAbsDiff([single.data[0].embedding], [grpcVectors[1]])).toBeLessThanOrEqual(1e-6);
  });

  it("token arrays of cl100k_base ids (one, or several) embed like their texts, and usage counts the model's tokens", async () => {
    const cl100k = new Tiktoken(cl100kBase);
    const ids = TEXTS.map((text) => cl100k.encode(text));
    const several = await openai.embeddings.create({ model: "text-embedding-3-small", input: ids });
    expect(maxAbsDiff(several.data.map((item) => item.embedding), grpcVectors)).toBeLessThanOrEqual(1e-6);
    const modelTokens = TEXTS.map((text) => tokenizer.encode(text).ids.length);
    expect(several.usage.prompt_tokens).toBe(modelTokens.reduce((sum, count) => sum + count, 0));
    expect(several.usage.prompt_tokens).not.toBe(ids.reduce((sum, row) => sum + row.length, 0));
    const one = await openai.embeddings.create({ model: "text-embedding-3-small", input: ids[2], encoding_format: "float" });
    expect(maxAbsDiff([one.data[0].embedding], [grpcVectors[2]])).toBeLessThanOrEqual(1e-6);
    expect(one.usage.prompt_tokens).toBe(modelTokens[2]);
  });

  it("answers errors in OpenAI's envelope, which the SDK reads: ids outside cl100k_base, empty input, unknown model, bad dimensions", async () => {
    const failure = async (body: Parameters<typeof openai.embeddings.create>[0]) => {
      const error = await openai.embeddings.create(body).then(() => undefined, (reason: unknown) => reason);
      expect(error).toBeInstanceOf(OpenAI.APIError);
      return error as InstanceType<typeof OpenAI.APIError>;
    };
    const outOfRange = await failure({ model: "text-embedding-3-small", input: [[1, 2, 100_277]] });
    expect(outOfRange.status).toBe(400);
    expect(outOfRange.type).toBe("invalid_request_error");
    expect(outOfRange.param).toBe("input");
    expect(outOfRange.code).toBe("INVALID_ARGUMENT");
    expect(outOfRange.message).toContain("input[0][2] = 100277 is not a cl100k_base token id");
    expect((await failure({ model: "text-embedding-3-small", input: [] })).code).toBe("EMPTY_INPUT");
    const unknown = await failure({ model: "no-such-model", input: "x" });
    expect([unknown.status, unknown.code]).toEqual([404, "UNKNOWN_MODEL"]);
    // Above the native 512 dimensions, which the server's default policy (reduce) cannot give.
    const dimensions = await failure({ model: "text-embedding-3-small", input: "x", dimensions: 1000 });
    expect([dimensions.status, dimensions.code]).toEqual([400, "INVALID_DIMENSIONS"]);
  });

  it("rejects malformed OpenAI bodies with 400 naming the field", async () => {
    const post = async (body: unknown) => {
      const response = await fetch(`${running.baseUrl}/v1/embeddings`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: (await response.json()) as { error: { code: string; param: string | null; type: string; message: string } } };
    };
    const cases: Array<[unknown, string, string | null]> = [
      [{ input: 42 }, "INVALID_ARGUMENT", "input"],
      [{ input: ["a", 1] }, "INVALID_ARGUMENT", "input"],
      [{ input: [1.5, 2] }, "INVALID_ARGUMENT", "input"],
      [{ input: [[1], [-1]] }, "INVALID_ARGUMENT", "input"],
      [{ input: [[1], []] }, "EMPTY_INPUT", null],
      [{ input: [""] }, "EMPTY_INPUT", null],
      [{ input: "a", encoding_format: "int8" }, "INVALID_ARGUMENT", "encoding_format"],
      [{ input: "a", model: 7 }, "INVALID_ARGUMENT", "model"],
      [{ input: "a", dimensions: "512" }, "INVALID_ARGUMENT", "dimensions"],
      [{ input: Array.from({ length: 2049 }, () => "a") }, "TOO_MANY_INPUTS", null],
    ];
    for (const [body, code, param] of cases) {
      const answer = await post(body);
      expect(answer.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(answer.body.error).toMatchObject({ code, param, type: "invalid_request_error" });
      expect(typeof answer.body.error.message).toBe("string");
    }
  });

  it("keeps the service's own dialect on the same route when the body has texts", async () => {
    const response = await fetch(`${running.baseUrl}/api/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ texts: TEXTS, model: "text-embedding-3-small" }),
    });
    const body = (await response.json()) as { embeddings: number[][]; model_info: { model_id: string } };
    expect(body.model_info.model_id).toBe(DEFAULT_MODEL_ID);
    expect(maxAbsDiff(body.embeddings, grpcVectors)).toBeLessThanOrEqual(1e-6);
  });
});

describe("the openai SDK against a server with API keys and rate limits", () => {
  it("authenticates with its apiKey (sent as Bearer) and maps 401 and 429 to its error classes", async () => {
    const running = await startRealService({ authMode: "api-key", apiKeys: "sk-good-0123456789", rateLimitRpm: 6, rateLimitBurst: 1 });
    try {
      const good = new OpenAI({ apiKey: "sk-good-0123456789", baseURL: `${running.baseUrl}/v1`, maxRetries: 0 });
      const response = await good.embeddings.create({ model: "text-embedding-3-small", input: "hello" });
      expect(response.data[0].embedding).toHaveLength(512);
      const limited = await good.embeddings.create({ model: "text-embedding-3-small", input: "hello" }).then(() => undefined, (reason: unknown) => reason);
      expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
      expect((limited as InstanceType<typeof OpenAI.RateLimitError>).headers?.get("retry-after")).toMatch(/^\d+$/);
      const bad = new OpenAI({ apiKey: "sk-bad", baseURL: `${running.baseUrl}/v1`, maxRetries: 0 });
      const refused = await bad.embeddings.create({ model: "text-embedding-3-small", input: "hello" }).then(() => undefined, (reason: unknown) => reason);
      expect(refused).toBeInstanceOf(OpenAI.AuthenticationError);
      expect((refused as InstanceType<typeof OpenAI.AuthenticationError>).type).toBe("authentication_error");
    } finally {
      await running.stop();
    }
  });
});
