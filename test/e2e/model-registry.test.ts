import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveHardwareProfile } from "../../src/inference/hardware-profile.js";
import { describeSentenceTransformersFolder, hashFolder, writeManifest } from "../../src/models/hf-folder.js";
import { createVariantPreparer } from "../../src/models/hub/prepare-variants.js";
import { writeTinyBertModel } from "../support/tiny-models.js";
import { startRealService, type RunningService } from "../support/real-service.js";

/**
 * Several models on one real server: routing, the LRU memory budget (unload and reload), and the
 * embedding cache (hits skip inference; instruction, dimensions and precision never collide).
 */

let root: string;
let modelsDir: string;
let running: RunningService;
let precisions: string[] = [];

interface EmbedAnswer {
  embeddings: number[][];
  model_info: { model_id: string; precision: string; dimensions: number };
  usage: { prompt_tokens: number };
  metadata: { truncated_inputs: number[] };
}

async function embed(body: Record<string, unknown>): Promise<EmbedAnswer> {
  const response = await fetch(`${running.baseUrl}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await response.json();
  expect(response.status, JSON.stringify(json)).toBe(200);
  return json as EmbedAnswer;
}

async function statusOf(id: string): Promise<string> {
  const response = await fetch(`${running.baseUrl}/v1/models/${encodeURIComponent(id)}`);
  return ((await response.json()) as { model: { status: string } }).model.status;
}

async function inferenceBatches(): Promise<number> {
  const metric = await running.service.metrics.inferenceBatchesTotal.get();
  return metric.values.reduce((sum, value) => sum + value.value, 0);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "sutra-registry-"));
  modelsDir = join(root, "models");
  const shape = { hiddenSize: 64, intermediateSize: 128 };
  await writeTinyBertModel(join(modelsDir, "tiny--alpha"), { ...shape, seed: 11 });
  await writeTinyBertModel(join(modelsDir, "tiny--beta"), { ...shape, seed: 12 });
  const matryoshka = join(modelsDir, "tiny--matryoshka");
  await writeTinyBertModel(matryoshka, { hiddenSize: 128, intermediateSize: 128, seed: 13 });
  const described = await describeSentenceTransformersFolder(matryoshka);
  const prepared = await createVariantPreparer()(matryoshka, { ...described, matryoshkaDimensions: [96, 64] });
  precisions = Object.keys(prepared.variants);
  await writeManifest(matryoshka, { ...prepared, files: await hashFolder(matryoshka) });

  const modelMb = (await stat(join(modelsDir, "tiny--alpha", "onnx/model.onnx"))).size / (1024 * 1024);
  const workers = resolveHardwareProfile("auto", { cuda: false, cudaAvailable: false }).workers;
  running = await startRealService({
    modelsDir,
    cacheSize: 1000,
    cacheTtlS: 600,
    // Room for one tiny model's sessions, not two (the default model is outside the budget).
    modelMemoryBudgetMb: modelMb * workers * 1.5,
  });
});

afterAll(async () => {
  await running?.stop();
  await rm(root, { recursive: true, force: true });
});

describe("several models on one server", () => {
  it("routes each request to its model, also when requests for two models run at once", async () => {
    const texts = ["hello world", "the quick brown fox"];
    const alpha = await embed({ texts, model: "tiny/alpha", config: { quantization: "none" } });
    const beta = await embed({ texts, model: "tiny/beta", config: { quantization: "none" } });
    expect(alpha.model_info.model_id).toBe("tiny/alpha");
    expect(beta.model_info.model_id).toBe("tiny/beta");
    expect(alpha.embeddings[0]).not.toEqual(beta.embeddings[0]);
    const together = await Promise.all(
      Array.from({ length: 6 }, (_, index) => embed({ texts, model: index % 2 === 0 ? "tiny/alpha" : "tiny/beta", config: { quantization: "none" }, instruction: `run ${index}` })),
    );
    // One at a time; `truncate: START` changes nothing for short texts but keeps the cache out of the comparison.
    const alone: EmbedAnswer[] = [];
    for (let index = 0; index < 6; index++) {
      alone.push(await embed({ texts, model: index % 2 === 0 ? "tiny/alpha" : "tiny/beta", config: { quantization: "none" }, instruction: `run ${index}`, truncate: "START" }));
    }
    for (const [index, answer] of together.entries()) {
      expect(answer.model_info.model_id).toBe(index % 2 === 0 ? "tiny/alpha" : "tiny/beta");
      for (const [row, vector] of answer.embeddings.entries()) {
        alone[index].embeddings[row].forEach((value, dimension) => expect(Math.abs(value - vector[dimension])).toBeLessThanOrEqual(1e-6));
      }
    }
  });

  it("a memory budget that fits one model unloads the least recently used; the unloaded model reloads on use", async () => {
    const first = await embed({ texts: ["reload me"], model: "tiny/alpha", config: { quantization: "none" }, normalize: false });
    expect(await statusOf("tiny/alpha")).toBe("loaded");
    await embed({ texts: ["x"], model: "tiny/beta", config: { quantization: "none" } });
    expect(await statusOf("tiny/beta")).toBe("loaded");
    expect(await statusOf("tiny/alpha")).toBe("ready");
    expect(await statusOf("universal-sentence-encoder-lite")).toBe("loaded");

    const again = await embed({ texts: ["reload me", "and more"], model: "tiny/alpha", config: { quantization: "none" }, normalize: false });
    expect(await statusOf("tiny/alpha")).toBe("loaded");
    expect(await statusOf("tiny/beta")).toBe("ready");
    again.embeddings[0].forEach((value, index) => expect(Math.abs(value - first.embeddings[0][index])).toBeLessThanOrEqual(1e-6));
  });
});

describe("embedding cache", () => {
  const request = { texts: ["cache me if you can", "second text"], model: "tiny/matryoshka", config: { quantization: "none" } };

  it("serves a repeated identical request from the cache: no inference, identical vectors, hits in health", async () => {
    const first = await embed(request);
    const batches = await inferenceBatches();
    const second = await embed(request);
    expect(await inferenceBatches()).toBe(batches);
    expect(second.embeddings).toEqual(first.embeddings);
    expect(second.usage.prompt_tokens).toBe(first.usage.prompt_tokens);
    expect(second.model_info).toMatchObject({ model_id: "tiny/matryoshka", precision: "fp32" });
    const health = (await (await fetch(`${running.baseUrl}/v1/health`)).json()) as { cache: Record<string, unknown> };
    expect(health.cache).toMatchObject({ enabled: true, max_size: 1000, ttl_seconds: 600 });
    expect(Number(health.cache.hits)).toBeGreaterThanOrEqual(2);
    expect(Number(health.cache.size)).toBeGreaterThanOrEqual(2);
  });

  it("a streamed request is served from the same cache, each record equal to the unary vector", async () => {
    const unary = await embed(request);
    const batches = await inferenceBatches();
    const response = await fetch(`${running.baseUrl}/v1/embeddings/stream`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/x-ndjson" },
      body: JSON.stringify(request),
    });
    expect(response.status).toBe(200);
    const records = (await response.text()).trim().split("\n").map((line) => JSON.parse(line) as { index: number; embedding: number[]; tokens: number });
    expect(records.map((record) => record.index).sort()).toEqual([0, 1]);
    for (const record of records) expect(record.embedding).toEqual(unary.embeddings[record.index]);
    expect(await inferenceBatches()).toBe(batches);
  });

  it("requests differing only in instruction, dimensions or precision do not collide", async () => {
    const base = await embed(request);
    let batches = await inferenceBatches();
    const expectMiss = async (body: Record<string, unknown>) => {
      const answer = await embed(body);
      const now = await inferenceBatches();
      expect(now, JSON.stringify(body)).toBeGreaterThan(batches);
      batches = now;
      return answer;
    };
    const instructed = await expectMiss({ ...request, instruction: "Represent this sentence" });
    expect(instructed.embeddings[0]).not.toEqual(base.embeddings[0]);
    const smaller = await expectMiss({ ...request, dimensions: 64 });
    expect(smaller.embeddings[0]).toHaveLength(64);
    const small = await expectMiss({ ...request, dimensions: 96 });
    expect(small.embeddings[0]).toHaveLength(96);
    expect(small.embeddings[0].slice(0, 64)).not.toEqual(smaller.embeddings[0]);

    const quantized = precisions.find((precision) => precision !== "fp32");
    expect(quantized, `variants built: ${precisions.join(", ")}`).toBeDefined();
    const config = quantized === "fp16" ? { use_fp16: true } : { quantization: quantized };
    const other = await expectMiss({ ...request, config });
    expect(other.model_info.precision).toBe(quantized);
    expect(other.embeddings[0]).not.toEqual(base.embeddings[0]);

    await embed({ ...request, instruction: "Represent this sentence" });
    await embed({ ...request, dimensions: 64 });
    await embed({ ...request, config });
    expect(await inferenceBatches()).toBe(batches);
  });
});
