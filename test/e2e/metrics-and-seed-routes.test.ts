import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { DEFAULT_MODEL_ID } from "../../src/models/builtin.js";
import { startRealService, type RunningService } from "../support/real-service.js";
import { metricKey as key, parseMetrics } from "../support/prometheus-text.js";


describe("metrics and the seed API's routes (real server)", () => {
  let running: RunningService;
  const scrape = async (path = "/metrics") => {
    const response = await fetch(running.baseUrl + path);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    return parseMetrics(await response.text());
  };
  const post = async (path: string, body: unknown) => {
    const response = await fetch(running.baseUrl + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    return { status: response.status, headers: response.headers, body: (await response.json()) as any };
  };

  beforeAll(async () => {
    running = await startRealService();
  });
  afterAll(() => running?.stop());

  it("a request moves the request, stage, batch, token and embedding series by what it did", async () => {
    const before = await scrape();
    const answer = await post("/v1/embeddings", { texts: ["one", "two", "three"] });
    expect(answer.status).toBe(200);
    const refused = await post("/v1/embeddings", { texts: [""] });
    expect(refused.status).toBe(400);
    const after = await scrape("/v1/embeddings/metrics");
    const delta = (name: string, labels: Record<string, string> = {}) => (after.get(key(name, labels)) ?? 0) - (before.get(key(name, labels)) ?? 0);
    const route = { protocol: "http", route: "POST /v1/embeddings" };
    expect(delta("sutra_requests_total", { ...route, code: "200" })).toBe(1);
    expect(delta("sutra_requests_total", { ...route, code: "400" })).toBe(1);
    expect(delta("sutra_request_duration_seconds_count", route)).toBe(2);
    expect(delta("sutra_failures_total", { reason: "EMPTY_INPUT" })).toBe(1);
    for (const stage of ["tokenize", "queue", "inference", "total"]) expect(delta("sutra_stage_duration_seconds_count", { stage })).toBe(1);
    const precision = answer.body.model_info.precision as string;
    expect(delta("sutra_embeddings_total", { model: DEFAULT_MODEL_ID, precision })).toBe(3);
    expect(delta("sutra_prompt_tokens_total", { model: DEFAULT_MODEL_ID })).toBe(answer.body.usage.prompt_tokens);
    expect(delta("sutra_batch_size_sum")).toBe(3);
    expect(delta("sutra_batch_tokens_count")).toBeGreaterThanOrEqual(1);
    expect(after.get(key("sutra_models_loaded"))).toBe(1);
    expect(after.has(key("sutra_queue_depth"))).toBe(true);
    expect(after.has(key("sutra_cache_hits"))).toBe(true);
    expect(after.has(key("sutra_cache_misses"))).toBe(true);
    expect(after.has(key("sutra_process_resident_memory_bytes"))).toBe(true);
  });

  it("counts RPCs by procedure and code, and failures by reason", async () => {
    const before = await scrape();
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
    await client.generateEmbeddings({ texts: ["a"] });
    await client.generateEmbeddings({ texts: ["a"], dimensions: 7 }).catch(() => undefined);
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => (after.get(key(name, labels)) ?? 0) - (before.get(key(name, labels)) ?? 0);
    const route = { protocol: "grpc", route: "/sutra.embedder.v1.EmbedderService/GenerateEmbeddings" };
    expect(delta("sutra_requests_total", { ...route, code: "ok" })).toBe(1);
    expect(delta("sutra_requests_total", { ...route, code: "invalid_argument" })).toBe(1);
    expect(delta("sutra_failures_total", { reason: "INVALID_DIMENSIONS" })).toBe(1);
  });

  it("POST /v1/embeddings/batch answers {embeddings, model, provider, count} under /api/v1 too", async () => {
    const answer = await post("/api/v1/embeddings/batch", { texts: ["alpha", "beta"], model: "text-embedding-3-small", provider: "local", dimensions: 0 });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ model: DEFAULT_MODEL_ID, provider: "local", count: 2 });
    expect(answer.body.embeddings).toHaveLength(2);
    expect(answer.body.embeddings[0]).toHaveLength(512);
    const same = await post("/v1/embeddings", { texts: ["alpha", "beta"] });
    expect(answer.body.embeddings).toEqual(same.body.embeddings);
    expect((await post("/v1/embeddings/batch", { texts: "alpha" })).body.error).toMatchObject({ code: "INVALID_ARGUMENT", param: "texts" });
    expect((await post("/v1/embeddings/batch", { texts: ["a"], provider: "nowhere" })).status).toBe(404);
  });

  it("GET /v1/embeddings/models (the guide's shape) and /models/{id} (by id or alias), 404 for an unknown id", async () => {
    const list = (await (await fetch(`${running.baseUrl}/v1/embeddings/models`)).json()) as any;
    expect(list.data.filter((item: { default: boolean }) => item.default).map((item: { model: string }) => item.model)).toEqual([DEFAULT_MODEL_ID]);
    const models = ((await (await fetch(`${running.baseUrl}/v1/models`)).json()) as any).models;
    expect(list.data).toHaveLength(models.length);
    const model = models.find((item: { id: string }) => item.id === DEFAULT_MODEL_ID);
    expect(model).toMatchObject({ dimensions: 512, status: "loaded" });
    expect(model.aliases).toEqual(expect.arrayContaining(["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"]));
    const one = (await (await fetch(`${running.baseUrl}/api/v1/embeddings/models/${DEFAULT_MODEL_ID}`)).json()) as any;
    expect(one).toEqual(model);
    const byAlias = (await (await fetch(`${running.baseUrl}/v1/embeddings/models/text-embedding-ada-002`)).json()) as any;
    expect(byAlias.id).toBe(DEFAULT_MODEL_ID);
    const missing = await fetch(`${running.baseUrl}/v1/embeddings/models/none`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as any).error.code).toBe("UNKNOWN_MODEL");
  });

  it("GET /v1/embeddings/health is 200 healthy; POST warmup warms the default model and reports an unknown one", async () => {
    const health = await fetch(`${running.baseUrl}/v1/embeddings/health`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as any).status).toBe("healthy");
    const warm = await post("/v1/embeddings/models/warmup", { models: [DEFAULT_MODEL_ID, "ghost"] });
    expect(warm.status).toBe(200);
    expect(warm.body.results).toEqual([
      expect.objectContaining({ model: DEFAULT_MODEL_ID, status: "warm", model_id: DEFAULT_MODEL_ID }),
      expect.objectContaining({ model: "ghost", status: "failed", error: expect.objectContaining({ code: "UNKNOWN_MODEL" }) }),
    ]);
  });
});

describe("seed health route when the server is not healthy", () => {
  it("answers 503 unhealthy while shutting down, and counts SHUTTING_DOWN refusals once", async () => {
    const running = await startRealService();
    try {
      running.service.embedder.beginShutdown();
      const health = await fetch(`${running.baseUrl}/api/v1/embeddings/health`);
      expect(health.status).toBe(503);
      expect(((await health.json()) as any).status).toBe("unhealthy");
      const series = 'sutra_failures_total{reason="SHUTTING_DOWN"}';
      const count = async () => Number(new RegExp(`^${series.replace(/[{}]/g, "\\$&")} (\\d+)$`, "m").exec(await (await fetch(`${running.baseUrl}/metrics`)).text())?.[1] ?? 0);
      const before = await count();
      const refused = await fetch(`${running.baseUrl}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"input": "x"}' });
      expect(refused.status).toBe(503);
      expect(((await refused.json()) as any).error.code).toBe("SHUTTING_DOWN");
      expect((await count()) - before).toBe(1);
    } finally {
      await running.stop();
    }
  });
});
