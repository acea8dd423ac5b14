/**
 * The seed Embeddings API guide's routes and metric names, exactly as the guide
 * shows them (issue 16, point 4), on real servers: one with local models, a job
 * store and a fake hub; one with fake upstream providers.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_MODEL_ID } from "../../src/models/builtin.js";
import { filesOfFolder, startFakeHub, type FakeHub } from "../support/fake-hub.js";
import { startFakeUpstream, type FakeUpstream } from "../support/fake-upstream.js";
import { metricKey as key, parseMetrics } from "../support/prometheus-text.js";
import { startRealService, type RunningService } from "../support/real-service.js";
import { writeTinyBertModel } from "../support/tiny-models.js";

const DIMS = 8;
const KEY_ENV = "SUTRA_TEST_SEED_SHAPES_KEY";

async function call(running: RunningService, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(running.baseUrl + path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text) };
}

const scrape = async (running: RunningService) => parseMetrics(await (await fetch(`${running.baseUrl}/metrics`)).text());

/** Polls `path` until `done` holds for its answer (20 s at most). */
async function pollUntil(running: RunningService, path: string, done: (answer: { status: number; body: any }) => boolean, body?: unknown) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const answer = await call(running, path, body);
    if (done(answer)) return answer;
    if (Date.now() > deadline) throw new Error(`${path} did not settle: ${JSON.stringify(answer.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("the guide's routes on a server with local models, a job store and a hub", () => {
  let root: string;
  let hub: FakeHub;
  let running: RunningService;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "sutra-seed-shapes-"));
    await writeTinyBertModel(join(root, "source"), { hiddenSize: 64, intermediateSize: 128, pooling: "mean" });
    hub = await startFakeHub();
    hub.add({ id: "tiny/good", commit: "a".repeat(40), files: await filesOfFolder(join(root, "source")) });
    running = await startRealService({ modelsDir: join(root, "models"), dataDir: join(root, "data"), hfEndpoint: hub.url, modelAllowlist: "tiny/*" });
  }, 60_000);

  afterAll(async () => {
    await running?.stop();
    await hub?.close();
    await rm(root, { recursive: true, force: true });
  });

  it("GET /api/v1/embeddings/models answers {data: [{provider, model, allowed, default}], allowed_providers, allowed_models}", async () => {
    for (const path of ["/api/v1/embeddings/models", "/v1/embeddings/models"]) {
      const { status, body } = await call(running, path);
      expect(status).toBe(200);
      expect(Object.keys(body).sort()).toEqual(["allowed_models", "allowed_providers", "data"]);
      expect(body.allowed_providers).toBeNull();
      expect(body.allowed_models).toBeNull();
      for (const entry of body.data) expect(Object.keys(entry).sort()).toEqual(["allowed", "default", "model", "provider"]);
      const served = ((await call(running, "/v1/models")).body.models as Array<{ id: string }>).map((model) => model.id);
      expect(body.data.map((entry: { model: string }) => entry.model)).toEqual(served);
      expect(body.data.filter((entry: { default: boolean }) => entry.default)).toEqual([{ provider: "local", model: DEFAULT_MODEL_ID, allowed: true, default: true }]);
    }
  });

  it("GET /api/v1/embeddings/health answers {status, service, timestamp, cache_stats, active_requests, circuit_breakers}", async () => {
    const before = Date.now();
    const { status, body } = await call(running, "/api/v1/embeddings/health");
    expect(status).toBe(200);
    expect(body).toEqual({
      status: "healthy",
      service: "sutra-embedder",
      timestamp: expect.any(String),
      cache_stats: { size: 0, max_size: 0, ttl_seconds: expect.anything() },
      active_requests: 0,
      circuit_breakers: {},
    });
    expect(Date.parse(body.timestamp)).toBeGreaterThanOrEqual(before - 1000);

    const texts = Array.from({ length: 50 }, (_, index) => `sentence number ${index} about embeddings in flight`);
    let settled = false;
    const load = Promise.all(Array.from({ length: 4 }, () => call(running, "/v1/embeddings", { texts }))).finally(() => {
      settled = true;
    });
    let busiest = 0;
    while (!settled) {
      busiest = Math.max(busiest, (await call(running, "/v1/embeddings/health")).body.active_requests);
    }
    expect((await load).every((answer) => answer.status === 200)).toBe(true);
    expect(busiest).toBeGreaterThan(0);
    expect((await call(running, "/v1/embeddings/health")).body.active_requests).toBe(0);
  });

  it("POST /api/v1/embeddings/models/download downloads as DownloadModel does; refuses ids off the allowlist and a body without one", async () => {
    const settled = await pollUntil(running, "/api/v1/embeddings/models/download", (answer) => answer.status !== 200 || answer.body.status !== "downloading", { model_id: "tiny/good" });
    expect(settled.status).toBe(200);
    expect(settled.body).toMatchObject({ model_id: "tiny/good", status: "loaded", progress: 1 });
    const viaRpc = await call(running, `/v1/models/${encodeURIComponent("tiny/good")}/download`, {});
    expect(Object.keys(settled.body).sort()).toEqual(Object.keys(viaRpc.body).sort());
    expect((await call(running, "/v1/embeddings/models/download", { model: "tiny/good" })).body.status).toBe("loaded");
    const forbidden = await call(running, "/v1/embeddings/models/download", { model_id: "other/model" });
    expect([forbidden.status, forbidden.body.error.code]).toEqual([403, "FORBIDDEN"]);
    const missing = await call(running, "/v1/embeddings/models/download", {});
    expect([missing.status, missing.body.error.code, missing.body.error.param]).toEqual([400, "INVALID_ARGUMENT", "model_id"]);
  });

  it("POST /api/v1/media/{media_id}/embeddings starts a document job; .../embeddings/status follows it to its chunks", async () => {
    const text = "Sutra embeds media text in chunks. ".repeat(40);
    const started = await call(running, "/api/v1/media/123/embeddings", { text, chunk_size: 32, chunk_overlap: 4 });
    expect(started.status).toBe(202);
    expect(started.body).toEqual({ media_id: 123, status: "accepted", message: "Embedding generation started", job_id: expect.stringMatching(/^job_/) });
    const done = await pollUntil(running, "/api/v1/media/123/embeddings/status", (answer) => answer.body.status === "completed" || answer.body.status === "failed");
    expect(done.status).toBe(200);
    expect(Object.keys(done.body).sort()).toEqual(["dimensions", "embedding_count", "embedding_model", "has_embeddings", "job", "job_id", "media_id", "status", "total_chunks"]);
    expect(done.body).toMatchObject({ media_id: 123, job_id: started.body.job_id, status: "completed", has_embeddings: true, embedding_model: DEFAULT_MODEL_ID, dimensions: 512 });
    expect(done.body.total_chunks).toBeGreaterThan(1);
    expect(done.body.embedding_count).toBe(done.body.total_chunks);
    expect(done.body.job).toEqual((await call(running, `/v1/jobs/${started.body.job_id}`)).body);
    const results = (await (await fetch(`${running.baseUrl}/v1/jobs/${started.body.job_id}/results`)).text()).trim().split("\n").map((line) => JSON.parse(line));
    expect(results).toHaveLength(done.body.total_chunks);
    expect(new Set(results.map((result) => result.document_id))).toEqual(new Set(["123"]));

    const named = await call(running, "/v1/media/report-7/embeddings", { text: "A short report." });
    expect(named.body).toMatchObject({ media_id: "report-7", status: "accepted" });
    expect((await call(running, "/v1/media/report-7/embeddings/status")).body.media_id).toBe("report-7");
    const unknown = await call(running, "/api/v1/media/999/embeddings/status");
    expect([unknown.status, unknown.body.error.code]).toEqual([404, "JOB_NOT_FOUND"]);
    const noText = await call(running, "/api/v1/media/5/embeddings", { embedding_model: DEFAULT_MODEL_ID });
    expect([noText.status, noText.body.error.code, noText.body.error.param]).toEqual([400, "INVALID_ARGUMENT", "text"]);
    const badChunk = await call(running, "/api/v1/media/5/embeddings", { text: "x", chunk_size: -1 });
    expect([badChunk.status, badChunk.body.error.param]).toEqual([400, "chunk_size"]);
  });

  it("exposes the guide's metric names beside sutra_*, counting online requests by status", async () => {
    const before = await scrape(running);
    expect((await call(running, "/v1/embeddings", { texts: ["one"] })).status).toBe(200);
    expect((await call(running, "/api/v1/embeddings", { input: "two" })).status).toBe(200);
    expect((await call(running, "/v1/embeddings", { texts: [""] })).status).toBe(400);
    const after = await scrape(running);
    const delta = (name: string, labels: Record<string, string> = {}) => (after.get(key(name, labels)) ?? 0) - (before.get(key(name, labels)) ?? 0);
    expect(delta("embedding_requests_total", { status: "success" })).toBe(2);
    expect(delta("embedding_requests_total", { status: "error" })).toBe(1);
    expect(delta("embedding_request_duration_seconds_count")).toBe(3);
    expect(after.has(key("embedding_request_duration_seconds_bucket", { le: "0.01" }))).toBe(true);
    const text = await (await fetch(`${running.baseUrl}/v1/embeddings/metrics`)).text();
    for (const name of ["embedding_requests_total", "embedding_request_duration_seconds", "embedding_provider_failures_total", "embedding_fallbacks_total"]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
  });
});

describe("the guide's routes on a server with upstream providers and no job store", () => {
  const fakes: Record<string, FakeUpstream> = {};
  let running: RunningService;

  beforeAll(async () => {
    for (const name of ["primary", "backup", "offlist"]) fakes[name] = await startFakeUpstream(DIMS);
    const provider = (name: string) => ({
      name,
      type: "openai-compatible",
      base_url: `${fakes[name].url}/v1`,
      api_key_env: KEY_ENV,
      models: [{ id: "fake/embed-8", dimensions: DIMS, group: "shared" }],
      retries: 0,
      breaker: { failures: 1000, cooldown_ms: 60_000 },
    });
    const providersFile = join(mkdtempSync(join(tmpdir(), "sutra-seed-providers-")), "providers.yaml");
    writeFileSync(providersFile, toYaml({ providers: ["primary", "backup", "offlist"].map(provider), fallback_chain: ["primary", "backup"] }));
    process.env[KEY_ENV] = "sk-seed-shapes";
    running = await startRealService({ providersFile, providerAllowlist: "primary,backup" });
  });

  afterAll(async () => {
    await running?.stop();
    for (const fake of Object.values(fakes)) await fake.close();
    delete process.env[KEY_ENV];
  });

  it("lists each provider's models with the allowlist, and the local default", async () => {
    const { status, body } = await call(running, "/api/v1/embeddings/models");
    expect(status).toBe(200);
    expect(body.allowed_providers).toEqual(["primary", "backup"]);
    expect(body.allowed_models).toBeNull();
    expect(body.data).toContainEqual({ provider: "local", model: DEFAULT_MODEL_ID, allowed: true, default: true });
    expect(body.data.filter((entry: { provider: string }) => entry.provider !== "local")).toEqual([
      { provider: "primary", model: "fake/embed-8", allowed: true, default: false },
      { provider: "backup", model: "fake/embed-8", allowed: true, default: false },
      { provider: "offlist", model: "fake/embed-8", allowed: false, default: false },
    ]);
  });

  it("counts a provider failure and the fallback under the guide's names as under sutra_*, and health shows the breakers by provider", async () => {
    const before = await scrape(running);
    fakes.primary.behave(() => ({ status: 500 }));
    const answer = await call(running, "/v1/embeddings", { texts: ["text 3"], model: "primary:fake/embed-8" });
    expect(answer.status).toBe(200);
    expect(answer.body.model_info.provider).toBe("backup");
    const after = await scrape(running);
    const delta = (name: string, labels: Record<string, string>) => (after.get(key(name, labels)) ?? 0) - (before.get(key(name, labels)) ?? 0);
    const failure = { provider: "primary", model: "fake/embed-8", reason: "server_error" };
    expect(delta("embedding_provider_failures_total", failure)).toBe(1);
    expect(delta("sutra_provider_failures_total", failure)).toBe(1);
    const fallback = { from_provider: "primary", to_provider: "backup" };
    expect(delta("embedding_fallbacks_total", fallback)).toBe(1);
    expect(delta("sutra_fallbacks_total", fallback)).toBe(1);
    expect(delta("embedding_requests_total", { status: "success" })).toBe(1);

    const health = await call(running, "/api/v1/embeddings/health");
    expect(health.body.circuit_breakers).toEqual({
      primary: { state: "closed", failure_count: 1 },
      backup: { state: "closed", failure_count: 0 },
      offlist: { state: "closed", failure_count: 0 },
    });
  });

  it("answers the media routes NOT_IMPLEMENTED without a job store", async () => {
    const started = await call(running, "/api/v1/media/1/embeddings", { text: "x" });
    expect([started.status, started.body.error.code]).toEqual([501, "NOT_IMPLEMENTED"]);
    const status = await call(running, "/api/v1/media/1/embeddings/status");
    expect([status.status, status.body.error.code]).toEqual([501, "NOT_IMPLEMENTED"]);
  });
});
