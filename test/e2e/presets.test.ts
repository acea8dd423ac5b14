import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmbedderService, EmbeddingType, Quantization } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { addServeOptions, readServeConfig } from "../../src/cli/serve-options.js";
import { DEFAULT_MODEL_ID } from "../../src/models/builtin.js";
import { DEFAULT_TASK_PRESETS } from "../../src/models/task-presets.js";
import { packSignBits } from "../../src/postprocess/encode-embedding.js";
import { metricKey as key, parseMetrics } from "../support/prometheus-text.js";
import { startRealService, type RunningService } from "../support/real-service.js";
import { writeTinyBertModel } from "../support/tiny-models.js";

const TEXT = "Presets pick the model, its precision and what the answer carries";
/** The hidden size of the tiny local model `high-quality` is pointed at (the default model has 512). */
const TINY_SIZE = 64;
const TINY_ID = "tiny-high-quality";

/** The task table of the Qwen3-Embedding guide, verbatim (`general`: no instruction). */
const TASK_TABLE = {
  general: null,
  reviews: "Retrieve comprehensive review articles and surveys that provide broad overviews of this topic",
  technical: "Retrieve technical documentation and implementation details related to this topic",
  troubleshooting: "Retrieve debugging guides, error solutions, and troubleshooting resources for this issue",
  comparisons: "Retrieve comparative analyses and benchmark studies related to this topic",
};

const post = async (baseUrl: string, body: unknown) => {
  const response = await fetch(`${baseUrl}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
};

const closeTo = (actual: ArrayLike<number>, expected: ArrayLike<number>) => {
  expect(actual).toHaveLength(expected.length);
  for (let index = 0; index < expected.length; index++) expect(Math.abs(actual[index] - expected[index])).toBeLessThan(1e-6);
};

describe("presets on the real default model", () => {
  let running: RunningService;
  let grpc: Client<typeof EmbedderService>;
  let modelsDir: string;
  beforeAll(async () => {
    modelsDir = mkdtempSync(join(tmpdir(), "sutra-presets-"));
    await writeTinyBertModel(join(modelsDir, TINY_ID), { hiddenSize: TINY_SIZE, intermediateSize: 128, pooling: "mean" });
    running = await startRealService({ modelsDir, highQualityModel: TINY_ID });
    grpc = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
  });
  afterAll(async () => {
    await running?.stop();
    rmSync(modelsDir, { recursive: true, force: true });
  });

  it("efficient runs the default model's preferred variant; high-quality the model SUTRA_HIGH_QUALITY_MODEL names", async () => {
    const efficient = await post(running.baseUrl, { texts: [TEXT], model: "efficient" });
    expect([efficient.status, efficient.body.model_info.model_id, efficient.body.model_info.precision]).toEqual([200, DEFAULT_MODEL_ID, "int8"]);
    const highQuality = await post(running.baseUrl, { texts: [TEXT], model: "high-quality" });
    expect([highQuality.status, highQuality.body.model_info.model_id, highQuality.body.model_info.precision]).toEqual([200, TINY_ID, "fp32"]);
    expect(highQuality.body.embeddings[0]).toHaveLength(TINY_SIZE);
  });

  it("custom honours every config field; quantization wins over use_fp16", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{}, "int8"],
      [{ use_fp16: true }, "fp16"],
      [{ quantization: "int4", use_fp16: true }, "int4"],
      [{ quantization: "none", use_fp16: true }, "fp32"],
      [{ quantization: "int8", use_fp16: true, batch_size: 16 }, "int8"],
    ];
    for (const [config, precision] of cases) {
      const answer = await post(running.baseUrl, { texts: [TEXT], model: "custom", config });
      expect([answer.status, answer.body.model_info.model_id, answer.body.model_info.precision]).toEqual([200, DEFAULT_MODEL_ID, precision]);
    }
  });

  it("custom's batch_size caps the texts per inference batch of that request", async () => {
    const texts = ["one", "two", "three", "four", "five", "six", "seven"];
    const batches = async (config: Record<string, unknown>) => {
      const before = parseMetrics(await (await fetch(`${running.baseUrl}/metrics`)).text());
      expect((await post(running.baseUrl, { texts, model: "custom", config })).status).toBe(200);
      const after = parseMetrics(await (await fetch(`${running.baseUrl}/metrics`)).text());
      const delta = (name: string, labels: Record<string, string> = {}) => (after.get(key(name, labels)) ?? 0) - (before.get(key(name, labels)) ?? 0);
      return { count: delta("sutra_batch_size_count"), sum: delta("sutra_batch_size_sum"), atMostTwo: delta("sutra_batch_size_bucket", { le: "2" }) };
    };
    expect(await batches({})).toEqual({ count: 1, sum: 7, atMostTwo: 0 });
    expect(await batches({ batch_size: 2 })).toEqual({ count: 4, sum: 7, atMostTwo: 4 });
  });

  it("ultra-efficient and the binary switches answer packed bits only over REST, unless floats are asked for", async () => {
    const floats = (await post(running.baseUrl, { texts: [TEXT], config: { quantization: "int8" } })).body.embeddings[0] as number[];
    const bits = Buffer.from(Int8Array.from(packSignBits(Float32Array.from(floats)), (byte) => byte - 128).buffer).toString("base64");
    for (const request of [{ model: "ultra-efficient" }, { config: { quantization: "binary" } }, { config: { binary_quantization: true } }]) {
      const answer = await post(running.baseUrl, { texts: [TEXT], ...request });
      expect(answer.status).toBe(200);
      expect(answer.body.model_info.precision).toBe("int8");
      expect(answer.body.embeddings).toEqual([{ embedding_type: "binary", binary: bits }]);
      const both = await post(running.baseUrl, { texts: [TEXT], ...request, embedding_types: ["float"] });
      expect(Object.keys(both.body.embeddings[0]).sort()).toEqual(["binary", "values"]);
      closeTo(both.body.embeddings[0].values, floats);
    }
  });

  it("ultra-efficient over gRPC fills the binary bytes field only, unless floats are asked for", async () => {
    const alone = await grpc.generateEmbeddings({ texts: [TEXT], model: "ultra-efficient" });
    const [embedding] = alone.embeddings;
    expect([embedding.values.length, embedding.binary.length, embedding.ubinary.length, embedding.int8.length]).toEqual([0, 512 / 8, 0, 0]);
    const custom = await grpc.generateEmbeddings({ texts: [TEXT], model: "custom", config: { quantization: Quantization.BINARY } });
    expect(custom.embeddings[0].binary).toEqual(embedding.binary);
    expect(custom.embeddings[0].values).toHaveLength(0);
    const withFloats = await grpc.generateEmbeddings({ texts: [TEXT], model: "ultra-efficient", embeddingTypes: [EmbeddingType.FLOAT] });
    expect(withFloats.embeddings[0].values).toHaveLength(512);
    expect(withFloats.embeddings[0].binary).toEqual(embedding.binary);
  });

  it("task presets carry the task table's names and instruction texts verbatim; general adds none", async () => {
    expect({ ...DEFAULT_TASK_PRESETS }).toEqual(TASK_TABLE);
    const plain = await post(running.baseUrl, { texts: [TEXT] });
    const general = await post(running.baseUrl, { texts: [TEXT], prompt_name: "general" });
    expect(general.body.embeddings).toEqual(plain.body.embeddings);
    for (const [name, instruction] of Object.entries(TASK_TABLE)) {
      if (instruction === null) continue;
      const preset = await post(running.baseUrl, { texts: [TEXT], prompt_name: name });
      const explicit = await post(running.baseUrl, { texts: [TEXT], instruction });
      expect([preset.status, preset.body.usage.prompt_tokens]).toEqual([200, explicit.body.usage.prompt_tokens]);
      expect(preset.body.embeddings).toEqual(explicit.body.embeddings);
    }
  });
});

describe("SUTRA_HIGH_QUALITY_MODEL", () => {
  it("defaults to empty (the default model) and refuses a preset name", () => {
    const read = (args: string[]) => readServeConfig(addServeOptions(new Command("serve").exitOverride().configureOutput({ writeErr: () => {} })).parse(args, { from: "user" }));
    expect(read([]).highQualityModel).toBe("");
    expect(read(["--high-quality-model", TINY_ID]).highQualityModel).toBe(TINY_ID);
    expect(() => read(["--high-quality-model", "efficient"])).toThrow(/preset/);
  });
});
