import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_TABLE } from "../../src/api/error-table.js";
import { ERROR_REASONS, type ErrorReason } from "../../src/domain/errors.js";
import { startRealService, type RunningService } from "../support/real-service.js";

const ROUTES = ["/v1/embeddings", "/api/v1/embeddings", "/v1/embeddings/batch", "/api/v1/embeddings/batch", "/v1/embeddings/models/warmup"];
const MAX_BODY_BYTES = 4 * 1024 * 1024;

/** A value of any JSON type, the usual suspects weighted up. */
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(1e308, -1e308, 2 ** 64, -(2 ** 63), 0.5, -1, 0, 64, 512, 4097, null, true, "", "text-embedding-3-small"),
  fc.string({ unit: "binary", maxLength: 40 }),
);

/** Token arrays, in range or not. */
const tokens = fc.array(fc.oneof(fc.integer({ min: 0, max: 8000 }), fc.integer(), fc.double()), { maxLength: 12 });

/** Bodies shaped like an OpenAI request, with wrong types mixed in. */
const openAiBody = fc.record(
  {
    input: fc.oneof(fc.string({ unit: "binary", maxLength: 60 }), fc.array(fc.string({ unit: "binary", maxLength: 40 }), { maxLength: 6 }), tokens, fc.array(tokens, { maxLength: 4 }), anyValue),
    model: fc.oneof(fc.constantFrom("text-embedding-3-small", "efficient", "universal-sentence-encoder-lite", "nope"), anyValue),
    encoding_format: fc.oneof(fc.constantFrom("float", "base64"), anyValue),
    dimensions: fc.oneof(fc.constantFrom(512, 256, 0), anyValue),
    user: anyValue,
  },
  { requiredKeys: ["input"] },
);

/** Bodies shaped like the service's own request and the seed's batch request. */
const textsBody = fc.record(
  {
    texts: fc.oneof(fc.array(fc.string({ unit: "binary", maxLength: 40 }), { maxLength: 6 }), anyValue),
    model: fc.oneof(fc.constantFrom("efficient", "text-embedding-3-small", "high-quality"), anyValue),
    provider: fc.oneof(fc.constant("local"), anyValue),
    dimensions: anyValue,
    truncate: fc.oneof(fc.constantFrom("end", "start", "none", "TRUNCATE_START"), anyValue),
    embedding_types: fc.oneof(fc.array(fc.constantFrom("float", "int8", "uint8", "binary", "ubinary", "half")), anyValue),
    config: fc.oneof(fc.record({ quantization: anyValue, batch_size: anyValue, use_fp16: anyValue, hardware_profile: anyValue }, { requiredKeys: [] }), anyValue),
    normalize: anyValue,
    models: fc.oneof(fc.array(fc.constantFrom("efficient", "ghost")), anyValue),
  },
  { requiredKeys: [] },
);

const encoder = new TextEncoder();

/** Raw bodies: valid JSON, `__proto__` keys, deep nesting, truncated JSON, invalid UTF-8, oversized. */
const rawBody: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 6, arbitrary: fc.oneof(openAiBody, textsBody).map((body) => encoder.encode(JSON.stringify(body))) },
  { weight: 2, arbitrary: fc.jsonValue().map((value) => encoder.encode(JSON.stringify(value) ?? "null")) },
  {
    weight: 1,
    arbitrary: fc.oneof(openAiBody, textsBody).map((body) => {
      const text = JSON.stringify(body);
      return encoder.encode(`{"__proto__": {"input": ["polluted"], "texts": ["polluted"], "isAdmin": true}, "constructor": {"prototype": {"x": 1}},${text.slice(1)}`);
    }),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 20_000 }).map((depth) => encoder.encode(`{"input": ${"[".repeat(depth)}1${"]".repeat(depth)}}`)),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.oneof(openAiBody, textsBody), fc.double({ min: 0, max: 1, noNaN: true })).map(([body, cut]) => {
      const bytes = encoder.encode(JSON.stringify(body));
      return bytes.subarray(0, Math.floor(bytes.byteLength * cut));
    }),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.constantFrom('{"input": "', '{"texts": ["')).map(([junk, prefix]) => {
      const bad = junk.map((byte) => byte | 0x80);
      return Buffer.concat([Buffer.from(prefix), Buffer.from([0xff, 0xfe]), Buffer.from(bad), Buffer.from(prefix.startsWith('{"input') ? '"}' : '"]}')]);
    }),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }) },
);

interface Outcome {
  status: number;
  requestId: string | null;
  text: string;
}

describe("fuzzing the JSON routes (real server)", () => {
  let running: RunningService;
  let answered = 0;
  const statuses = new Map<number, number>();

  beforeAll(async () => {
    running = await startRealService();
  });
  afterAll(() => running?.stop());

  const send = async (path: string, body: Uint8Array): Promise<Outcome> => {
    const response = await fetch(running.baseUrl + path, { method: "POST", headers: { "content-type": "application/json" }, body: new Uint8Array(body) });
    answered++;
    statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    return { status: response.status, requestId: response.headers.get("x-request-id"), text: await response.text() };
  };

  /** 2xx with JSON, or a documented 4xx with the error envelope; never 5xx. */
  const check = (outcome: Outcome, what: string): void => {
    expect(outcome.status, `${what}: ${outcome.text.slice(0, 300)}`).toBeLessThan(500);
    const body = JSON.parse(outcome.text) as { error?: { code: ErrorReason; message: string; type: string; param: unknown; request_id: string } };
    if (outcome.status < 300) {
      expect(body.error).toBeUndefined();
      return;
    }
    expect(outcome.status).toBeGreaterThanOrEqual(400);
    expect(ERROR_REASONS).toContain(body.error?.code);
    expect(ERROR_TABLE[body.error!.code].httpStatus).toBe(outcome.status);
    expect(typeof body.error?.message).toBe("string");
    expect(typeof body.error?.type).toBe("string");
    expect(body.error?.request_id).toBe(outcome.requestId);
  };

  it("answers >= 1,000 generated bodies with 2xx or a documented 4xx envelope, and stays healthy", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROUTES), rawBody, async (path, body) => {
        check(await send(path, body), `${path} ${Buffer.from(body.subarray(0, 120)).toString("latin1")}`);
      }),
      { numRuns: 1100, seed: Number(process.env.FUZZ_SEED ?? 20251123) },
    );
    expect(answered).toBeGreaterThanOrEqual(1100);
    // The generators reach both the pipeline and the refusals, not only one of them.
    const successes = [...statuses].filter(([status]) => status < 300).reduce((sum, [, count]) => sum + count, 0);
    expect(successes, JSON.stringify([...statuses])).toBeGreaterThanOrEqual(100);
    expect(answered - successes).toBeGreaterThanOrEqual(100);
  }, 300_000);

  it("answers 5 MB bodies with 413 and a body of the limit exactly with an answer", async () => {
    const huge = Buffer.alloc(5 * 1024 * 1024, 0x61);
    for (const path of ROUTES) {
      const outcome = await send(path, Buffer.concat([Buffer.from('{"input": "'), huge, Buffer.from('"}')]));
      check(outcome, `${path} 5 MB`);
      expect(outcome.status).toBe(413);
    }
    const atLimit = Buffer.concat([Buffer.from('{"input": "'), Buffer.alloc(MAX_BODY_BYTES - 13, 0x61), Buffer.from('"}')]);
    expect(atLimit.byteLength).toBe(MAX_BODY_BYTES);
    const outcome = await send("/v1/embeddings", atLimit);
    check(outcome, "4 MB input");
    expect(outcome.status).toBe(200);
  });

  it("is still healthy and embedding after the fuzzing, and no prototype was polluted", async () => {
    const health = await fetch(`${running.baseUrl}/v1/health`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as { status: string }).status).toBe("healthy");
    const outcome = await send("/v1/embeddings", encoder.encode(JSON.stringify({ input: ["still here"] })));
    expect(outcome.status).toBe(200);
    expect((JSON.parse(outcome.text) as { data: unknown[] }).data).toHaveLength(1);
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });
});
