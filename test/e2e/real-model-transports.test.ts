import { execFile, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  EmbedderService,
  GenerateEmbeddingsRequestSchema,
  GenerateEmbeddingsResponseSchema,
  type GenerateEmbeddingsResponse,
} from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID } from "../../src/models/builtin.js";
import type { ModelManifest, Precision } from "../../src/models/manifest.js";
import { loadTokenizer } from "../../src/tokenize/index.js";
import { startRealService, type RunningService } from "../support/real-service.js";

const run = promisify(execFile);
const TEXTS = ["The cat sat on the mat.", "Vector search over embeddings ✨", "日本語のテキストも埋め込みます"];
const modelDir = join(BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID);
const manifest = JSON.parse(readFileSync(join(modelDir, "sutra-model.json"), "utf8")) as ModelManifest;

/** The model's own output for TEXTS: onnxruntime on the variant file, no service code but the tokenizer. */
async function directVectors(precision: Precision): Promise<number[][]> {
  const tokenizer = await loadTokenizer(join(modelDir, manifest.tokenizer), { maxTokens: manifest.maxTokens });
  const padded = tokenizer.pad(tokenizer.encodeBatch(TEXTS));
  const dims = [padded.batchSize, padded.sequenceLength];
  const session = await ort.InferenceSession.create(join(modelDir, manifest.variants[precision]!.file), { intraOpNumThreads: 1 });
  const output = await session.run({
    input_ids: new ort.Tensor("int64", padded.inputIds, dims),
    attention_mask: new ort.Tensor("int64", padded.attentionMask, dims),
  });
  await session.release();
  const data = output[manifest.output].data as Float32Array;
  return TEXTS.map((_, row) => Array.from(data.subarray(row * manifest.dimensions, (row + 1) * manifest.dimensions)));
}

function maxAbsDiff(actual: ArrayLike<number>[], expected: number[][]): number {
  expect(actual).toHaveLength(expected.length);
  let worst = 0;
  actual.forEach((vector, row) => {
    expect(vector.length).toBe(expected[row].length);
    for (let index = 0; index < vector.length; index++) worst = Math.max(worst, Math.abs(vector[index] - expected[row][index]));
  });
  return worst;
}

const pythonHasGrpc = (() => {
  try {
    execFileSync("/usr/bin/python3", ["-c", "import grpc"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

const valuesOf = (response: GenerateEmbeddingsResponse) => response.embeddings.map((embedding) => embedding.values);

describe("every transport returns the model's vectors (real server, real model)", () => {
  let running: RunningService;
  let expected: number[][];
  let precision: Precision;

  beforeAll(async () => {
    running = await startRealService();
    const probe = await fetch(`${running.baseUrl}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ texts: TEXTS }),
    });
    const body = (await probe.json()) as { model_info: { precision: Precision } };
    precision = body.model_info.precision;
    expected = await directVectors(precision);
  });
  afterAll(() => running?.stop());

  it("(a) gRPC through the connect-node transport", async () => {
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
    const response = await client.generateEmbeddings({ texts: TEXTS });
    expect(response.modelInfo?.modelId).toBe(DEFAULT_MODEL_ID);
    expect(maxAbsDiff(valuesOf(response), expected)).toBeLessThanOrEqual(1e-6);
  });

  it("(b) Connect JSON over HTTP/1.1", async () => {
    const client = createClient(EmbedderService, createConnectTransport({ baseUrl: running.baseUrl, httpVersion: "1.1" }));
    expect(maxAbsDiff(valuesOf(await client.generateEmbeddings({ texts: TEXTS })), expected)).toBeLessThanOrEqual(1e-6);
  });

  it("(c) gRPC-Web", async () => {
    const client = createClient(EmbedderService, createGrpcWebTransport({ baseUrl: running.baseUrl, httpVersion: "1.1" }));
    expect(maxAbsDiff(valuesOf(await client.generateEmbeddings({ texts: TEXTS })), expected)).toBeLessThanOrEqual(1e-6);
  });

  it("(d) REST POST /v1/embeddings", async () => {
    const response = await fetch(`${running.baseUrl}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ texts: TEXTS }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { embeddings: number[][] };
    expect(maxAbsDiff(body.embeddings, expected)).toBeLessThanOrEqual(1e-6);
  });

  it("(e) @grpc/grpc-js", async () => {
    const Client = grpc.makeGenericClientConstructor({
      GenerateEmbeddings: {
        path: "/sutra.embedder.v1.EmbedderService/GenerateEmbeddings",
        requestStream: false,
        responseStream: false,
        requestSerialize: (message: Uint8Array) => Buffer.from(message),
        requestDeserialize: (bytes: Buffer) => bytes,
        responseSerialize: (message: Uint8Array) => Buffer.from(message),
        responseDeserialize: (bytes: Buffer) => fromBinary(GenerateEmbeddingsResponseSchema, bytes),
      },
    }, "EmbedderService");
    const client = new Client(`127.0.0.1:${running.port}`, grpc.credentials.createInsecure());
    try {
      const request = toBinary(GenerateEmbeddingsRequestSchema, create(GenerateEmbeddingsRequestSchema, { texts: TEXTS }));
      const response = await new Promise<GenerateEmbeddingsResponse>((resolve, reject) => {
        (client as unknown as Record<string, (message: Uint8Array, callback: (error: Error | null, value: GenerateEmbeddingsResponse) => void) => void>)
          .GenerateEmbeddings(request, (error, value) => (error ? reject(error) : resolve(value)));
      });
      expect(maxAbsDiff(valuesOf(response), expected)).toBeLessThanOrEqual(1e-6);
    } finally {
      client.close();
    }
  });

  it("(f) buf curl with server reflection only", async () => {
    const { stdout } = await run(join(process.cwd(), "node_modules/.bin/buf"), [
      "curl", "--http2-prior-knowledge", "--protocol", "grpc",
      "-d", JSON.stringify({ texts: TEXTS }),
      `${running.baseUrl}/sutra.embedder.v1.EmbedderService/GenerateEmbeddings`,
    ], { cwd: "/" });
    const body = JSON.parse(stdout) as { embeddings: Array<{ values: number[] }> };
    expect(maxAbsDiff(body.embeddings.map((embedding) => embedding.values), expected)).toBeLessThanOrEqual(1e-6);
  });

  it.skipIf(!pythonHasGrpc)(pythonHasGrpc
    ? "(g) Python grpcio (examples/python/embed_client.py)"
    : "(g) Python grpcio: skipped because /usr/bin/python3 cannot import grpc (install python3-grpcio)", async () => {
    const { stdout } = await run("/usr/bin/python3", [
      new URL("../../examples/python/embed_client.py", import.meta.url).pathname,
      "--target", `127.0.0.1:${running.port}`, ...TEXTS,
    ]);
    const body = JSON.parse(stdout) as { model_id: string; embeddings: number[][] };
    expect(body.model_id).toBe(DEFAULT_MODEL_ID);
    expect(maxAbsDiff(body.embeddings, expected)).toBeLessThanOrEqual(1e-6);
  });

  it("accepts the seed OpenAPI example request and answers in its REST shape", async () => {
    const response = await fetch(`${running.baseUrl}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        texts: TEXTS,
        model: "efficient",
        dimensions: 0,
        config: { quantization: "int8", use_fp16: false, batch_size: 32, binary_quantization: false, hardware_profile: "auto" },
      }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { embeddings: unknown[]; model_info: Record<string, unknown> };
    expect(body.embeddings).toHaveLength(3);
    for (const vector of body.embeddings) {
      expect(Array.isArray(vector)).toBe(true);
      expect((vector as unknown[]).every((value) => typeof value === "number")).toBe(true);
    }
    expect(body.model_info.model_id).toBe(DEFAULT_MODEL_ID);
    expect(body.model_info).toHaveProperty("execution_provider", "cpu");
    expect(body.model_info).not.toHaveProperty("modelId");
  });
});
