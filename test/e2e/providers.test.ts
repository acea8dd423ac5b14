import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { pino } from "pino";
import { stringify as toYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { fakeVector, startFakeUpstream, type FakeUpstream } from "../support/fake-upstream.js";
import { startRealService, type RunningService } from "../support/real-service.js";
import { metricKey as key, parseMetrics } from "../support/prometheus-text.js";

/** The key every fake provider is configured with, through an env var; it must reach the upstream and nothing else. */
const SECRET = "sk-test-9f3c1e7a-never-logged";
const KEY_ENV = "SUTRA_TEST_UPSTREAM_KEY";
const DIMS = 8;
/** The fake's vector as it comes back: float32 values (the service keeps vectors as Float32Array). */
const expected = (text: string) => fakeVector(text, DIMS).map(Math.fround);


const PROVIDERS = ["flaky", "breaking", "primary", "backup", "solo", "other", "limited", "broken", "slow", "big", "tei", "hf", "offlist"] as const;
type Name = (typeof PROVIDERS)[number];

describe("upstream providers: retries, breaker, fallback, limits, validation (real server, fake upstreams on loopback)", () => {
  let running: RunningService;
  const fakes = {} as Record<Name, FakeUpstream>;
  const logLines: string[] = [];

  const post = async (body: unknown, headers: Record<string, string> = {}, path = "/v1/embeddings") => {
    const started = Date.now();
    const response = await fetch(running.baseUrl + path, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
    return { status: response.status, headers: response.headers, body: (await response.json()) as any, ms: Date.now() - started };
  };
  const get = async (path: string) => {
    const response = await fetch(running.baseUrl + path);
    return { status: response.status, body: (await response.json()) as any };
  };
  const scrape = async () => parseMetrics(await (await fetch(`${running.baseUrl}/metrics`)).text());
  const breakerOf = async (provider: Name) =>
    ((await get("/v1/embeddings/circuit-breakers")).body.circuit_breakers as any[]).find((entry) => entry.provider === provider);

  beforeAll(async () => {
    for (const name of PROVIDERS) fakes[name] = await startFakeUpstream(DIMS);
    const openai = (name: Name, settings: Record<string, unknown> = {}, group = "shared") => ({
      name,
      type: "openai-compatible",
      base_url: `${fakes[name].url}/v1`,
      api_key_env: KEY_ENV,
      models: [{ id: "fake/embed-8", dimensions: DIMS, group }],
      backoff: { base_ms: 20, max_ms: 2000 },
      breaker: { failures: 1000, cooldown_ms: 60_000 },
      retries: 0,
      ...settings,
    });
    const file = {
      providers: [
        openai("flaky", { retries: 3 }, "flaky"),
        openai("breaking", { breaker: { failures: 3, cooldown_ms: 3000 } }, "breaking"),
        openai("primary"),
        openai("backup"),
        openai("solo", {}, "solo"),
        openai("other", { models: [{ id: "another/model-8", dimensions: DIMS, group: "another" }] }),
        openai("limited", { rpm: 60, timeout_ms: 2000, concurrency: 100 }, "limited"),
        openai("broken", {}, "broken"),
        openai("slow", { timeout_ms: 300, retries: 1 }, "slow"),
        openai("big", { max_batch: 96, concurrency: 4 }, "big"),
        { name: "tei", type: "tei", base_url: fakes.tei.url, models: [{ id: "tei-model", dimensions: DIMS }] },
        { name: "hf", type: "hf-inference", base_url: fakes.hf.url, api_key_env: KEY_ENV, models: [{ id: "org/hf-model", dimensions: DIMS }] },
        openai("offlist", {}, "offlist"),
      ],
      fallback_chain: ["primary", "backup", "solo", "other"],
    };
    const dir = mkdtempSync(join(tmpdir(), "sutra-providers-"));
    const providersFile = join(dir, "providers.yaml");
    writeFileSync(providersFile, toYaml(file));
    process.env[KEY_ENV] = SECRET;
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    });
    running = await startRealService(
      { providersFile, maxInputs: 5000, providerAllowlist: PROVIDERS.filter((name) => name !== "offlist").join(",") },
      pino({ level: "debug" }, sink),
    );
  });
  afterAll(async () => {
    await running?.stop();
    for (const fake of Object.values(fakes)) await fake?.close();
    delete process.env[KEY_ENV];
  });

  it("a 429 is retried after its Retry-After and then succeeds; the key reaches the upstream as a Bearer token", async () => {
    const before = await scrape();
    fakes.flaky.behave((index) => (index === 0 ? { status: 429, headers: { "retry-after": "1" } } : "ok"));
    const answer = await post({ texts: ["text 7", "text 8"], model: "flaky:fake/embed-8", normalize: false });
    expect(answer.status).toBe(200);
    expect(fakes.flaky.calls).toHaveLength(2);
    const [first, second] = fakes.flaky.calls;
    expect(second.at - first.at).toBeGreaterThanOrEqual(990);
    expect(second.at - first.at).toBeLessThan(3000);
    expect(second.authorization).toBe(`Bearer ${SECRET}`);
    expect(answer.body.embeddings).toEqual([expected("text 7"), expected("text 8")]);
    expect(answer.headers.get("x-embeddings-provider")).toBe("flaky");
    expect(answer.headers.get("x-embeddings-fallback-from")).toBeNull();
    expect(answer.body.model_info.provider).toBe("flaky");
    expect(answer.body.usage.prompt_tokens).toBe("text 7text 8".length);
    const after = await scrape();
    const failures = key("sutra_provider_failures_total", { provider: "flaky", model: "fake/embed-8", reason: "rate_limited" });
    expect((after.get(failures) ?? 0) - (before.get(failures) ?? 0)).toBe(1);
    expect(after.get(key("sutra_upstream_request_duration_seconds_count", { provider: "flaky", outcome: "ok" }))).toBeGreaterThanOrEqual(1);
  });

  it("a 400 is not retried and answers INVALID_ARGUMENT; 5xx are retried with backoff", async () => {
    fakes.flaky.calls.length = 0;
    fakes.flaky.behave(() => ({ status: 400 }));
    const refused = await post({ texts: ["a"], model: "flaky:fake/embed-8" });
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe("INVALID_ARGUMENT");
    expect(fakes.flaky.calls).toHaveLength(1);

    fakes.flaky.calls.length = 0;
    fakes.flaky.behave((index) => (index < 2 ? { status: 503 } : "ok"));
    const recovered = await post({ texts: ["a"], model: "flaky:fake/embed-8" });
    expect(recovered.status).toBe(200);
    expect(fakes.flaky.calls).toHaveLength(3);

    fakes.flaky.calls.length = 0;
    fakes.flaky.behave(() => ({ status: 500 }));
    const exhausted = await post({ texts: ["a"], model: "flaky:fake/embed-8" });
    expect(exhausted.status).toBe(503);
    expect(exhausted.body.error.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(fakes.flaky.calls).toHaveLength(4);
    // Equal-jitter backoff from 20 ms: waits in [10, 20], [20, 40], [40, 80] ms.
    const gaps = fakes.flaky.calls.slice(1).map((call, index) => call.at - fakes.flaky.calls[index].at);
    gaps.forEach((gap, index) => expect(gap).toBeGreaterThanOrEqual(10 * 2 ** index - 2));
  });

  it("a timeout counts as a failure and is retried; then UPSTREAM_UNAVAILABLE", async () => {
    fakes.slow.behave(() => "hang");
    const answer = await post({ texts: ["a"], model: "slow:fake/embed-8" });
    expect(answer.status).toBe(503);
    expect(answer.body.error.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(answer.body.error.message).toMatch(/did not answer in time/);
    expect(fakes.slow.calls).toHaveLength(2);
    expect(answer.ms).toBeGreaterThanOrEqual(600);
  });

  it("the breaker opens after N consecutive failures, skips the provider for the cooldown, and a half-open probe closes it", async () => {
    fakes.breaking.behave(() => ({ status: 500 }));
    for (let attempt = 0; attempt < 3; attempt++) {
      expect((await post({ texts: ["a"], model: "breaking:fake/embed-8" })).status).toBe(503);
    }
    expect(fakes.breaking.calls).toHaveLength(3);
    const open = await breakerOf("breaking");
    expect(open.state).toBe("open");
    expect(open.consecutive_failures).toBe(3);
    const health = await get("/v1/health");
    expect(health.status).toBe(200);
    expect(health.body.status).toBe("degraded");
    expect(health.body.checks.providers).toContainEqual({ name: "breaking", breaker_state: "open", healthy: false });
    expect(health.body.checks.issues).toContain("provider breaking: circuit breaker open");
    expect((await get("/v1/embeddings/health")).status).toBe(503);

    fakes.breaking.behave(() => "ok");
    const skipped = await post({ texts: ["a"], model: "breaking:fake/embed-8" });
    expect(skipped.status).toBe(503);
    expect(skipped.body.error.message).toMatch(/circuit breaker open/);
    expect(Number(skipped.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(fakes.breaking.calls).toHaveLength(3);

    await new Promise((resolve) => setTimeout(resolve, Math.max(0, open.retry_in_ms) + 100));
    expect((await breakerOf("breaking")).state).toBe("half_open");
    const probe = await post({ texts: ["a"], model: "breaking:fake/embed-8" });
    expect(probe.status).toBe(200);
    expect(fakes.breaking.calls).toHaveLength(4);
    expect((await breakerOf("breaking")).state).toBe("closed");
    expect((await get("/v1/health")).body.checks.providers).toContainEqual({ name: "breaking", breaker_state: "closed", healthy: true });
  });

  it("an admin reset closes an open breaker at once", async () => {
    fakes.breaking.behave(() => ({ status: 502 }));
    for (let attempt = 0; attempt < 3; attempt++) await post({ texts: ["a"], model: "breaking:fake/embed-8" });
    expect((await breakerOf("breaking")).state).toBe("open");
    const reset = await post({}, {}, "/v1/embeddings/circuit-breakers/breaking/reset");
    expect(reset.status).toBe(200);
    expect(reset.body).toMatchObject({ provider: "breaking", state: "closed", consecutive_failures: 0 });
    fakes.breaking.behave(() => "ok");
    expect((await post({ texts: ["a"], model: "breaking:fake/embed-8" })).status).toBe(200);
    expect((await post({}, {}, "/v1/embeddings/circuit-breakers/nobody/reset")).status).toBe(404);
  });

  it("fallback to an equivalent provider sets the headers (REST and gRPC), model_info and the counter", async () => {
    const before = await scrape();
    fakes.primary.behave(() => ({ status: 503 }));
    const answer = await post({ texts: ["text 3"], model: "primary:fake/embed-8", normalize: false });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("x-embeddings-provider")).toBe("backup");
    expect(answer.headers.get("x-embeddings-fallback-from")).toBe("primary");
    expect(answer.body.model_info.provider).toBe("backup");
    expect(answer.body.embeddings).toEqual([expected("text 3")]);
    expect(fakes.backup.calls).toHaveLength(1);

    let headers = new Headers();
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
    const grpc = await client.generateEmbeddings(
      { texts: ["text 4"], model: "fake/embed-8" },
      { headers: { "x-provider": "primary" }, onHeader: (received) => (headers = received) },
    );
    expect(grpc.modelInfo?.provider).toBe("backup");
    expect(headers.get("x-embeddings-provider")).toBe("backup");
    expect(headers.get("x-embeddings-fallback-from")).toBe("primary");

    const after = await scrape();
    const fallbacks = key("sutra_fallbacks_total", { from_provider: "primary", to_provider: "backup" });
    expect((after.get(fallbacks) ?? 0) - (before.get(fallbacks) ?? 0)).toBe(2);
    const failures = key("sutra_provider_failures_total", { provider: "primary", model: "fake/embed-8", reason: "server_error" });
    expect((after.get(failures) ?? 0) - (before.get(failures) ?? 0)).toBe(2);
  });

  it("with only non-equivalent providers left the request fails with UPSTREAM_UNAVAILABLE unless it opts in", async () => {
    fakes.solo.behave(() => ({ status: 500 }));
    fakes.primary.behave(() => "ok");
    const callsBefore = { primary: fakes.primary.calls.length, backup: fakes.backup.calls.length, other: fakes.other.calls.length };
    const refused = await post({ texts: ["a"], model: "solo:fake/embed-8" });
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(refused.body.error.details.skipped_providers).toEqual(["primary", "backup", "other"]);
    expect(refused.body.error.message).toMatch(/allow_cross_model_fallback/);
    expect({ primary: fakes.primary.calls.length, backup: fakes.backup.calls.length, other: fakes.other.calls.length }).toEqual(callsBefore);

    const opted = await post({ texts: ["a"], model: "solo:fake/embed-8", allow_cross_model_fallback: true });
    expect(opted.status).toBe(200);
    expect(opted.headers.get("x-embeddings-provider")).toBe("primary");
    expect(opted.headers.get("x-embeddings-fallback-from")).toBe("solo");
  });

  it("an RPM limit of 60 holds over a 10 s burst of 500 requests; requests with no slot within timeout_ms get RATE_LIMITED and Retry-After", async () => {
    const before = await scrape();
    const results: Array<Promise<Awaited<ReturnType<typeof post>>>> = [];
    const started = Date.now();
    for (let index = 0; index < 500; index++) {
      const due = started + index * 20;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())));
      results.push(post({ texts: [`burst ${index}`], model: "limited:fake/embed-8" }));
    }
    const answers = await Promise.all(results);
    const calls = fakes.limited.calls;
    const firstCall = calls[0].at;
    const inWindow = calls.filter((call) => call.at - firstCall <= 10_000).length;
    const ok = answers.filter((answer) => answer.status === 200);
    const limited = answers.filter((answer) => answer.status === 429);
    console.log(`RPM test: ${inWindow} upstream calls in the first 10 s, ${calls.length} in all; ${ok.length} answered, ${limited.length} RATE_LIMITED; slowest answer ${Math.max(...ok.map((answer) => answer.ms))} ms`);
    expect(inWindow).toBeLessThanOrEqual(70);
    expect(inWindow).toBeGreaterThanOrEqual(60);
    expect(ok.length + limited.length).toBe(500);
    expect(ok.length).toBe(calls.length);
    for (const answer of limited) {
      expect(answer.body.error.code).toBe("RATE_LIMITED");
      expect(Number(answer.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    }
    const noSlot = key("sutra_provider_failures_total", { provider: "limited", model: "fake/embed-8", reason: "no_slot" });
    expect(((await scrape()).get(noSlot) ?? 0) - (before.get(noSlot) ?? 0)).toBe(limited.length);
    // Admitted requests waited for their slot, but never longer than timeout_ms (plus the request's own time).
    expect(Math.max(...ok.map((answer) => answer.ms))).toBeGreaterThan(500);
    expect(Math.max(...ok.map((answer) => answer.ms))).toBeLessThan(2000 + 1000);
  }, 30_000);

  it("wrong-dimension, wrong-count and malformed upstream answers are UPSTREAM_BAD_RESPONSE, never a 200", async () => {
    const before = await scrape();
    fakes.broken.behave(() => ({ wrongDimensions: DIMS + 1 }));
    const wrongSize = await post({ texts: ["a", "b"], model: "broken:fake/embed-8" });
    expect(wrongSize.status).toBe(502);
    expect(wrongSize.body.error.code).toBe("UPSTREAM_BAD_RESPONSE");
    expect(wrongSize.body.error.details).toMatchObject({ provider: "broken", expected_dimensions: DIMS, dimensions: DIMS + 1 });

    fakes.broken.behave(() => ({ dropVectors: 1 }));
    const wrongCount = await post({ texts: ["a", "b", "c"], model: "broken:fake/embed-8" });
    expect(wrongCount.status).toBe(502);
    expect(wrongCount.body.error.details).toMatchObject({ expected_count: 3, count: 2 });

    fakes.broken.behave(() => ({ malformed: '{"data": [' }));
    const malformed = await post({ texts: ["a"], model: "broken:fake/embed-8" });
    expect(malformed.status).toBe(502);
    expect(malformed.body.error.code).toBe("UPSTREAM_BAD_RESPONSE");

    fakes.broken.behave(() => ({ wrongDimensions: 3 }));
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
    const grpcError = await client.generateEmbeddings({ texts: ["a"], model: "broken:fake/embed-8" }).catch((error: unknown) => error);
    expect(grpcError).toBeInstanceOf(ConnectError);
    expect((grpcError as ConnectError).code).toBe(Code.Unavailable);
    expect(fakes.broken.calls).toHaveLength(4);

    const after = await scrape();
    const bad = key("sutra_provider_failures_total", { provider: "broken", model: "fake/embed-8", reason: "bad_response" });
    expect((after.get(bad) ?? 0) - (before.get(bad) ?? 0)).toBe(4);
  });

  it("a 5,000-text request to a provider with max batch 96 arrives complete and in order", async () => {
    const texts = Array.from({ length: 5000 }, (_, index) => `passage ${index}`);
    const answer = await post({ texts, model: "big:fake/embed-8", normalize: false });
    expect(answer.status).toBe(200);
    expect(answer.body.embeddings).toHaveLength(5000);
    answer.body.embeddings.forEach((vector: number[], index: number) => expect(vector[0]).toBe(index));
    expect(fakes.big.calls).toHaveLength(Math.ceil(5000 / 96));
    expect(Math.max(...fakes.big.calls.map((call) => call.texts.length))).toBe(96);
    const sent = fakes.big.calls.flatMap((call) => call.texts).sort();
    expect(sent).toEqual([...texts].sort());
  }, 30_000);

  it("routes by provider:model, the x-provider header (REST, OpenAI SDK) and a bare model id; TEI and HF Inference dialects", async () => {
    const header = await post({ texts: ["text 1"], model: "tei-model", normalize: false }, { "x-provider": "tei" });
    expect(header.status).toBe(200);
    expect(header.headers.get("x-embeddings-provider")).toBe("tei");
    expect(header.body.embeddings).toEqual([expected("text 1")]);
    expect(fakes.tei.calls.at(-1)?.path).toBe("/embed");
    expect(fakes.tei.calls.at(-1)?.authorization).toBeUndefined();

    const bare = await post({ texts: ["text 2"], model: "org/hf-model" });
    expect(bare.status).toBe(200);
    expect(bare.headers.get("x-embeddings-provider")).toBe("hf");
    expect(fakes.hf.calls.at(-1)?.path).toBe("/models/org/hf-model/pipeline/feature-extraction");

    const openai = new OpenAI({ apiKey: "unused", baseURL: `${running.baseUrl}/v1`, maxRetries: 0, defaultHeaders: { "x-provider": "backup" } });
    const sdk = await openai.embeddings.create({ model: "fake/embed-8", input: ["text 5"], encoding_format: "float" }).withResponse();
    expect(sdk.response.headers.get("x-embeddings-provider")).toBe("backup");
    expect(sdk.data.data[0].embedding).toHaveLength(DIMS);

    const local = await post({ texts: ["hello"] }, { "x-provider": "local" });
    expect(local.status).toBe(200);
    expect(local.headers.get("x-embeddings-provider")).toBe("local");
    expect(local.body.model_info.provider).toBe("local");
  });

  it("unknown providers are 404, providers off the allowlist FORBIDDEN, and a conflicting header INVALID_ARGUMENT", async () => {
    expect((await post({ texts: ["a"] }, { "x-provider": "nobody" })).body.error.code).toBe("UNKNOWN_MODEL");
    expect((await post({ texts: ["a"], model: "tei:no-such-model" })).status).toBe(404);
    const forbidden = await post({ texts: ["a"], model: "offlist:fake/embed-8" });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.error.code).toBe("FORBIDDEN");
    expect(fakes.offlist.calls).toHaveLength(0);
    expect((await post({ texts: ["a"], model: "tei:tei-model" }, { "x-provider": "hf" })).status).toBe(400);
  });

  it("providers-config shows the settings with keys redacted; no key in any log line", async () => {
    const config = await get("/v1/embeddings/providers-config");
    expect(config.status).toBe(200);
    const text = JSON.stringify(config.body);
    expect(text).not.toContain(SECRET);
    const limited = config.body.providers.find((provider: any) => provider.name === "limited");
    expect(limited).toMatchObject({ type: "openai-compatible", api_key_env: KEY_ENV, api_key: "<redacted>", rpm: 60, timeout_ms: 2000, allowed: true });
    expect(config.body.providers.find((provider: any) => provider.name === "offlist").allowed).toBe(false);
    expect(config.body.fallback_chain).toEqual(["primary", "backup", "solo", "other"]);
    expect(logLines.length).toBeGreaterThan(100);
    expect(logLines.filter((line) => line.includes(SECRET))).toEqual([]);
    expect(logLines.some((line) => line.includes("upstream call failed"))).toBe(true);
  });
});
