import { Writable } from "node:stream";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { encodeEmbedding, packSignBits } from "../../src/postprocess/encode-embedding.js";
import { CRASHING_WORKER_MODULE, crashOneWorker } from "../support/crashing-worker.js";
import { startRealService, type RunningService } from "../support/real-service.js";
import { tierOf } from "../../src/inference/hardware-profile.js";

const postJson = async (baseUrl: string, body: unknown, signal?: AbortSignal) => {
  const response = await fetch(`${baseUrl}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, any> };
};

const health = async (baseUrl: string) => (await (await fetch(`${baseUrl}/v1/health`)).json()) as Record<string, any>;

const longText = (seed: number) => `Passage ${seed}: ${"streams of text become vectors for retrieval and ranking ".repeat(20)}`;

describe("engine on the real model", () => {
  let running: RunningService;
  beforeAll(async () => {
    running = await startRealService({ maxQueue: 8 });
  });
  afterAll(() => running?.stop());

  it("over the queue bound, refuses the excess at once with retry-after; every accepted request completes correctly", async () => {
    const texts = Array.from({ length: 80 }, (_, index) => longText(index));
    const alone = await postJson(running.baseUrl, { texts: [texts[5]] });
    const outcomes = await Promise.all(texts.map(async (text) => {
      const started = performance.now();
      const result = await postJson(running.baseUrl, { texts: [text] });
      return { text, ...result, ms: performance.now() - started };
    }));
    const refused = outcomes.filter((outcome) => outcome.status === 429);
    const accepted = outcomes.filter((outcome) => outcome.status === 200);
    expect(refused.length + accepted.length).toBe(80);
    expect(refused.length).toBeGreaterThan(0);
    for (const outcome of refused) {
      expect(outcome.body.error.code).toBe("OVERLOADED");
      expect(Number(outcome.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    }
    // Refusals come without queueing: a generous bound (the machine runs other test files meanwhile).
    const refusalMs = refused.map((outcome) => outcome.ms).sort((a, b) => a - b);
    const p95 = refusalMs[Math.min(refusalMs.length - 1, Math.floor(refusalMs.length * 0.95))];
    console.log(`overload: ${refused.length} of 80 refused, refusal latency p50 ${refusalMs[refusalMs.length >> 1].toFixed(0)} ms, p95 ${p95.toFixed(0)} ms`);
    expect(p95).toBeLessThan(2000);
    const fifth = accepted.find((outcome) => outcome.text === texts[5]);
    if (fifth) expect(fifth.body.embeddings[0]).toEqual(alone.body.embeddings[0]);
    for (const outcome of accepted) expect(outcome.body.embeddings[0]).toHaveLength(512);
  });

  it("output types match references computed from the float vector", async () => {
    const { body } = await postJson(running.baseUrl, { texts: ["bits and bytes"], embedding_types: ["float", "int8", "uint8", "binary", "ubinary"] });
    const embedding = body.embeddings[0];
    const float = Float32Array.from(embedding.float ?? embedding.values);
    const ubinary = new Uint8Array(64);
    float.forEach((value, index) => {
      if (value > 0) ubinary[Math.floor(index / 8)] |= 1 << (7 - (index % 8));
    });
    const decode = (value: string) => new Uint8Array(Buffer.from(value, "base64"));
    expect(decode(embedding.ubinary)).toEqual(ubinary);
    expect(Array.from(new Int8Array(decode(embedding.binary).buffer))).toEqual(Array.from(ubinary, (byte) => byte - 128));
    expect(new Int8Array(decode(embedding.int8).buffer)).toEqual(Int8Array.from(float, (value) => Math.max(-127, Math.min(127, Math.round(value * 127)))));
    expect(decode(embedding.uint8)).toEqual(Uint8Array.from(float, (value) => Math.max(0, Math.min(255, Math.round((value + 1) * 127.5)))));
    expect(packSignBits(float)).toEqual(ubinary);
    expect(encodeEmbedding(float, ["int8"]).int8).toEqual(new Int8Array(decode(embedding.int8).buffer));
  });

  it("under dimensions_policy reject, refuses other sizes with INVALID_DIMENSIONS listing the supported sizes", async () => {
    const { status, body } = await postJson(running.baseUrl, { texts: ["x"], dimensions: 256, dimensions_policy: "reject" });
    expect(status).toBe(400);
    expect(body.error.code).toBe("INVALID_DIMENSIONS");
    expect(body.error.details.supported).toEqual([512]);
  });

  it("drops 100 queued requests whose clients went away, without running them", async () => {
    // One worker whose batches are always full of long blockers (16 x 128 tokens is the minimal
    // profile's budget), so the short requests stay queued until they are cancelled.
    const relaxed = await startRealService({ maxQueue: 10_000, profile: "minimal" });
    const gauge = async (metric: { get(): Promise<{ values: Array<{ value: number }> }> }) => (await metric.get()).values[0]?.value ?? 0;
    try {
      const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: relaxed.baseUrl }));
      const busy = client.generateEmbeddings({ texts: Array.from({ length: 160 }, (_, index) => longText(index)) });
      while ((await gauge(relaxed.service.metrics.queueDepth)) === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      const controllers = Array.from({ length: 100 }, () => new AbortController());
      const doomedClient = createClient(EmbedderService, createGrpcTransport({ baseUrl: relaxed.baseUrl }));
      const doomed = controllers.map((controller, index) =>
        doomedClient.generateEmbeddings({ texts: [`cancel me ${index}`] }, { signal: controller.signal }).then(
          () => "completed",
          (error: unknown) => ConnectError.from(error).code,
        ));
      while ((await gauge(relaxed.service.metrics.requestsInFlight)) < 101) await new Promise((resolve) => setTimeout(resolve, 20));
      for (const controller of controllers) controller.abort();
      expect(await Promise.all(doomed)).toEqual(controllers.map(() => Code.Canceled));
      expect((await busy).embeddings).toHaveLength(160);
      while ((await gauge(relaxed.service.metrics.requestsInFlight)) > 0) await new Promise((resolve) => setTimeout(resolve, 20));
      expect({
        cancelled: await gauge(relaxed.service.metrics.cancelledTextsTotal),
        batches: await gauge(relaxed.service.metrics.inferenceBatchesTotal),
      }).toEqual({ cancelled: 100, batches: 160 / 16 });
    } finally {
      await relaxed.stop();
    }
  });

  it("keeps serving when a worker dies mid-load: requests complete or fail WORKER_FAILED, health recovers", async () => {
    const relaxed = await startRealService({ maxQueue: 10_000 }, undefined, { workerModule: CRASHING_WORKER_MODULE });
    try {
      const requests = Array.from({ length: 24 }, (_, index) =>
        postJson(relaxed.baseUrl, { texts: Array.from({ length: 8 }, (_, row) => longText(index * 8 + row)) }));
      await new Promise((resolve) => setTimeout(resolve, 50));
      await crashOneWorker(relaxed.service.pool);
      const during = await health(relaxed.baseUrl);
      const outcomes = await Promise.all(requests);
      for (const outcome of outcomes) {
        if (outcome.status !== 200) {
          expect(outcome.status).toBe(503);
          expect(outcome.body.error.code).toBe("WORKER_FAILED");
        } else {
          expect(outcome.body.embeddings).toHaveLength(8);
        }
      }
      expect(during.status).toBe("degraded");
      let recovered = "";
      for (let attempt = 0; attempt < 40 && recovered !== "healthy"; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        recovered = (await health(relaxed.baseUrl)).status;
      }
      expect(recovered).toBe("healthy");
      expect((await postJson(relaxed.baseUrl, { texts: ["still serving"] })).status).toBe(200);
    } finally {
      await relaxed.stop();
    }
  });
});

describe("CUDA configured on a host without it", () => {
  it("a server configured for extreme serves on CPU, logs the fallback once, and reports gpu_accessible false and degraded", async () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _encoding, done) { lines.push(String(chunk)); done(); } });
    const running = await startRealService({ profile: "extreme" }, pino({ level: "warn" }, sink));
    try {
      const first = await postJson(running.baseUrl, { texts: ["gpu please"], config: { hardware_profile: "h100" } });
      expect(first.status).toBe(200);
      expect(first.body.model_info.execution_provider).toBe("cpu");
      expect(first.body.metadata.hardware_profile).toBe("h100");
      await postJson(running.baseUrl, { texts: ["again"] });
      // Degraded because the server itself was configured for CUDA; a request's own profile never changes health.
      const report = await health(running.baseUrl);
      expect(report.status).toBe("degraded");
      expect(report.checks.issues).toContain("CUDA configured but unavailable; running on CPU");
      expect(report.checks.gpu_accessible).toBe(false);
      const fallbackLines = lines.filter((line) => /CUDA/.test(line) && /fall|CPU/i.test(line));
      expect(fallbackLines.length).toBeGreaterThanOrEqual(1);
      expect(fallbackLines.length).toBeLessThanOrEqual(2);
    } finally {
      await running.stop();
    }
  });
});

describe("the tier and settings in force", () => {
  it("are reported by health, ListModels, GetModel and every answer; operator settings replace the tier's", async () => {
    const running = await startRealService({ workers: 1, intraOpThreads: 2, tokenBudget: 4096, maxBatchSize: 16, maxQueue: 100 });
    try {
      const tier = tierOf("auto");
      const expected = { tier, execution_provider: "cpu", workers: 1, intra_op_threads: 2, token_budget: 4096, max_batch_size: 16, max_queue: 100 };
      const report = await health(running.baseUrl);
      expect(report.hardware_profile).toBe("auto");
      expect(report.serving).toEqual(expected);
      const listed = (await (await fetch(`${running.baseUrl}/v1/models`)).json()) as { models: Array<Record<string, any>> };
      expect(listed.models.length).toBeGreaterThan(0);
      for (const model of listed.models) expect(model.serving).toEqual(expected);
      const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
      expect((await client.getModel({ modelId: "universal-sentence-encoder-lite" })).model?.serving?.maxBatchSize).toBe(16);
      const answer = await postJson(running.baseUrl, { texts: ["which tier?"] });
      expect(answer.body.metadata.hardware_profile).toBe(tier);
      const asked = await postJson(running.baseUrl, { texts: ["which tier?"], config: { hardware_profile: "desktop" } });
      expect(asked.body.metadata.hardware_profile).toBe("desktop");
      expect(asked.body.embeddings[0]).toEqual(answer.body.embeddings[0]);
    } finally {
      await running.stop();
    }
  });
});
