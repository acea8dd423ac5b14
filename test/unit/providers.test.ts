import { describe, expect, it } from "vitest";
import { EmbedderError } from "../../src/domain/errors.js";
import { createCircuitBreaker } from "../../src/providers/circuit-breaker.js";
import { parseFallbackChain, parseProvidersConfig, redactedProvidersConfig } from "../../src/providers/provider-config.js";
import { createProviderLimiter } from "../../src/providers/provider-limiter.js";
import { backoffDelayMs, retryAfterMs } from "../../src/providers/retry-policy.js";
import { createTokenBucket } from "../../src/admission/token-bucket.js";
import { createUpstreamClient, UpstreamFailure } from "../../src/providers/upstream-client.js";

/** A clock the test moves by hand. */
function fakeClock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const provider = (settings: Record<string, unknown> = {}) => ({
  name: "up",
  type: "openai-compatible",
  base_url: "http://127.0.0.1:9/v1/",
  models: [{ id: "m", dimensions: 4 }],
  ...settings,
});

describe("token bucket with reservations", () => {
  it("grants a minute's worth at once, then queues callers behind each other and refuses those past their deadline", () => {
    const clock = fakeClock();
    const bucket = createTokenBucket({ perMinute: 60, now: clock.now });
    for (let index = 0; index < 60; index++) expect(bucket.reserve(1, 0)).toEqual({ granted: true, waitMs: 0 });
    expect(bucket.reserve(1, 2000)).toEqual({ granted: true, waitMs: 1000 });
    expect(bucket.reserve(1, 2000)).toEqual({ granted: true, waitMs: 2000 });
    expect(bucket.reserve(1, 2000)).toEqual({ granted: false, waitMs: 3000 });
    clock.advance(1000);
    expect(bucket.reserve(1, 2000)).toEqual({ granted: true, waitMs: 2000 });
    bucket.credit(3);
    expect(bucket.reserve(1, 0)).toEqual({ granted: true, waitMs: 0 });
  });

  it("caps an oversized cost at the capacity and treats 0 per minute as unlimited", () => {
    const bucket = createTokenBucket({ perMinute: 100, now: fakeClock().now });
    expect(bucket.reserve(10_000, 0)).toEqual({ granted: true, waitMs: 0 });
    expect(bucket.level()).toBe(0);
    const unlimited = createTokenBucket({ perMinute: 0 });
    expect(unlimited.reserve(1e9, 0)).toEqual({ granted: true, waitMs: 0 });
  });
});

describe("provider limiter", () => {
  it("waits for RPM tokens up to timeout_ms, then refuses with RATE_LIMITED and a Retry-After", async () => {
    const clock = fakeClock();
    const slept: number[] = [];
    const limiter = createProviderLimiter({
      provider: "up", rpm: 2, tpm: 0, concurrency: 10, timeoutMs: 30_000, now: clock.now,
      sleep: async (ms) => {
        slept.push(ms);
      },
    });
    (await limiter.acquire(["a"])).release();
    (await limiter.acquire(["a"])).release();
    const third = await limiter.acquire(["a"]);
    expect(slept).toEqual([30_000]);
    third.release();
    const refused = await limiter.acquire(["a"]).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(EmbedderError);
    expect((refused as EmbedderError).reason).toBe("RATE_LIMITED");
    expect((refused as EmbedderError).retryAfterMs).toBe(60_000);
  });

  it("estimates tokens as chars/4, learns the ratio from reported usage, and charges TPM", async () => {
    const limiter = createProviderLimiter({ provider: "up", rpm: 0, tpm: 100, concurrency: 10, timeoutMs: 0, now: fakeClock().now });
    expect(limiter.estimateTokens(["x".repeat(40)])).toBe(10);
    const slot = await limiter.acquire(["x".repeat(40)]);
    slot.release(40);
    expect(limiter.estimateTokens(["x".repeat(40)])).toBe(Math.ceil(40 * (0.8 * 0.25 + 0.2 * 1)));
    // 100 per minute, 40 used: a call estimated at more than the 60 left is refused (timeout 0).
    const refused = await limiter.acquire(["x".repeat(200)]).catch((error: unknown) => error);
    expect((refused as EmbedderError).details.limit).toBe("tpm");
  });

  it("caps concurrency: a call waits for a released slot, and one with no slot in time is RATE_LIMITED", async () => {
    const limiter = createProviderLimiter({ provider: "up", rpm: 0, tpm: 0, concurrency: 1, timeoutMs: 50 });
    const first = await limiter.acquire(["a"]);
    const waiting = limiter.acquire(["b"]);
    setTimeout(() => first.release(), 10);
    (await waiting).release();
    const held = await limiter.acquire(["c"]);
    const refused = await limiter.acquire(["d"]).catch((error: unknown) => error);
    expect((refused as EmbedderError).reason).toBe("RATE_LIMITED");
    expect((refused as EmbedderError).details.limit).toBe("concurrency");
    held.release();
    (await limiter.acquire(["e"])).release();
  });
});

describe("circuit breaker", () => {
  it("closed -> open after N consecutive failures -> half-open single probe after the cooldown -> closed", () => {
    const clock = fakeClock();
    const breaker = createCircuitBreaker({ failures: 3, cooldownMs: 1000, now: clock.now });
    breaker.recordFailure();
    breaker.recordFailure();
    breaker.recordSuccess();
    breaker.recordFailure();
    breaker.recordFailure();
    expect(breaker.snapshot().state).toBe("closed");
    breaker.recordFailure();
    expect(breaker.snapshot()).toMatchObject({ state: "open", consecutiveFailures: 3, retryInMs: 1000, opened: 1 });
    expect(breaker.admit()).toBe("reject");
    clock.advance(1000);
    expect(breaker.snapshot().state).toBe("half_open");
    expect(breaker.admit()).toBe("probe");
    expect(breaker.admit()).toBe("reject");
    expect(breaker.allows(true)).toBe(true);
    expect(breaker.allows(false)).toBe(false);
    breaker.recordSuccess();
    expect(breaker.snapshot()).toMatchObject({ state: "closed", consecutiveFailures: 0 });
    expect(breaker.admit()).toBe("pass");
  });

  it("a failed probe opens it for another cooldown; a probe without verdict frees the slot; reset closes", () => {
    const clock = fakeClock();
    const breaker = createCircuitBreaker({ failures: 1, cooldownMs: 500, now: clock.now });
    breaker.recordFailure();
    clock.advance(500);
    expect(breaker.admit()).toBe("probe");
    breaker.recordFailure();
    expect(breaker.snapshot()).toMatchObject({ state: "open", opened: 2 });
    clock.advance(500);
    expect(breaker.admit()).toBe("probe");
    breaker.endProbe();
    expect(breaker.admit()).toBe("probe");
    breaker.reset();
    expect(breaker.snapshot().state).toBe("closed");
  });
});

describe("retry policy", () => {
  it("backs off 1, 2, 4, 8, 16 s (capped) with equal jitter", () => {
    const backoff = { baseMs: 1000, maxMs: 16_000 };
    expect([0, 1, 2, 3, 4, 5].map((retry) => backoffDelayMs(retry, backoff, () => 1))).toEqual([1000, 2000, 4000, 8000, 16_000, 16_000]);
    expect([0, 1, 2, 3, 4, 5].map((retry) => backoffDelayMs(retry, backoff, () => 0))).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
  });

  it("reads retry-after-ms, Retry-After seconds and HTTP dates", () => {
    expect(retryAfterMs(new Headers({ "retry-after": "2" }))).toBe(2000);
    expect(retryAfterMs(new Headers({ "retry-after": "1", "retry-after-ms": "1500" }))).toBe(1500);
    expect(retryAfterMs(new Headers({ "retry-after": new Date(10_000).toUTCString() }), 4000)).toBe(6000);
    expect(retryAfterMs(new Headers({ "retry-after": "soon" }))).toBeUndefined();
    expect(retryAfterMs(new Headers())).toBeUndefined();
  });
});

describe("providers file", () => {
  it("fills defaults, groups by model id, reads the key from the env var and never shows it", () => {
    const config = parseProvidersConfig({ providers: [provider({ api_key_env: "UP_KEY" })], fallback_chain: ["up", "local"] }, { UP_KEY: "sk-secret" });
    expect(config.providers[0]).toMatchObject({
      baseUrl: "http://127.0.0.1:9/v1", maxBatch: 32, concurrency: 4, timeoutMs: 30_000, retries: 3, rpm: 0, tpm: 0,
      breaker: { failures: 5, cooldownMs: 30_000 }, backoff: { baseMs: 1000, maxMs: 16_000 },
      models: [{ id: "m", dimensions: 4, group: "m" }],
    });
    expect(config.keyOf("up")).toBe("sk-secret");
    expect(JSON.stringify(config)).not.toContain("sk-secret");
    const shown = JSON.stringify(redactedProvidersConfig(config, []));
    expect(shown).not.toContain("sk-secret");
    expect(shown).toContain('"api_key_env":"UP_KEY"');
  });

  it("refuses unknown settings, a missing key env var, duplicate names and chains naming unknown providers", () => {
    expect(() => parseProvidersConfig({ providers: [provider({ rmp: 5 })] }, {})).toThrow(/providers\[0\]\.rmp is not a known provider setting/);
    expect(() => parseProvidersConfig({ providers: [provider({ api_key_env: "NOPE" })] }, {})).toThrow(/names NOPE, which is not set/);
    expect(() => parseProvidersConfig({ providers: [provider(), provider()] }, {})).toThrow(/names "up" twice/);
    expect(() => parseProvidersConfig({ providers: [provider()], fallback_chain: ["up", "ghost"] }, {})).toThrow(/"ghost"/);
    expect(() => parseProvidersConfig({ providers: [provider({ type: "grpc" })] }, {})).toThrow(/type must be one of/);
    expect(() => parseProvidersConfig({ providers: [provider({ models: [{ id: "m", dimensions: 0 }] })] }, {})).toThrow(/dimensions must be an integer >= 1/);
    expect(parseFallbackChain(" up , local ", ["up"])).toEqual(["up", "local"]);
    expect(() => parseFallbackChain("up,ghost", ["up"])).toThrow(/EMBEDDINGS_FALLBACK_CHAIN names "ghost"/);
  });
});

describe("upstream client", () => {
  const config = parseProvidersConfig({ providers: [provider({ timeout_ms: 1000 })] }, {}).providers[0];
  const answering = (status: number, body: string, headers: Record<string, string> = {}): typeof fetch =>
    (async () => new Response(body, { status, headers })) as typeof fetch;

  it("puts OpenAI data back in index order and reads usage", async () => {
    const body = JSON.stringify({ data: [{ index: 1, embedding: [2, 2] }, { index: 0, embedding: [1, 1] }], usage: { prompt_tokens: 7 } });
    const answer = await createUpstreamClient(config, "k", answering(200, body)).embed({ texts: ["a", "b"], model: "m" });
    expect(answer.vectors.map((vector) => Array.from(vector))).toEqual([[1, 1], [2, 2]]);
    expect(answer.promptTokens).toBe(7);
  });

  it("classifies repeated indices, non-numbers and bad JSON as bad_response; errors keep status and Retry-After", async () => {
    const failure = async (fetchImpl: typeof fetch) =>
      (await createUpstreamClient(config, undefined, fetchImpl).embed({ texts: ["a"], model: "m" }).catch((error: unknown) => error)) as UpstreamFailure;
    expect((await failure(answering(200, JSON.stringify({ data: [{ index: 0, embedding: [1] }, { index: 0, embedding: [1] }] })))).kind).toBe("bad_response");
    expect((await failure(answering(200, JSON.stringify({ data: [{ index: 0, embedding: ["x"] }] })))).kind).toBe("bad_response");
    expect((await failure(answering(200, "{"))).kind).toBe("bad_response");
    const limited = await failure(answering(429, "{}", { "retry-after": "3" }));
    expect(limited).toMatchObject({ kind: "http", status: 429, retryAfterMs: 3000 });
    const echoed = (await createUpstreamClient(config, "sk-echoed", answering(401, '{"error": "bad key sk-echoed"}')).embed({ texts: ["a"], model: "m" })
      .catch((error: unknown) => error)) as UpstreamFailure;
    expect(echoed.detail).toBe('HTTP 401: {"error": "bad key <redacted>"}');
    const unreachable = await failure((async () => {
      throw new TypeError("fetch failed");
    }) as typeof fetch);
    expect(unreachable.kind).toBe("network");
  });
});
