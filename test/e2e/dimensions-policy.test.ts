import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorReason } from "../../src/client/errors.js";
import type { DimensionsPolicy as PolicyWord } from "../../src/domain/types.js";
import { DimensionsPolicy, EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { floats, jobClient } from "../support/job-documents.js";
import { startRealService, type RunningService } from "../support/real-service.js";

/** The built-in default model's native size (not Matryoshka). */
const NATIVE = 512;
const TEXT = "Machine learning revolutionizes data processing";
/** Float32 answers against expectations computed in float64. */
const TOLERANCE = 1e-6;

const post = async (baseUrl: string, body: unknown) => {
  const response = await fetch(`${baseUrl}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: response.status, policyHeader: response.headers.get("x-embeddings-dimensions-policy"), body: (await response.json()) as Record<string, any> };
};

const renormalised = (values: number[]): number[] => {
  const norm = Math.sqrt(values.reduce((sum, value) => sum + value * value, 0));
  return values.map((value) => value / norm);
};

const expectClose = (actual: ArrayLike<number>, expected: number[]) => {
  expect(actual).toHaveLength(expected.length);
  const worst = Math.max(...expected.map((value, index) => Math.abs(value - actual[index])));
  expect(worst).toBeLessThan(TOLERANCE);
};

/** What each policy answers for a size below and above the native one: the applied policy and the expected vector, or a refusal. */
function expectations(native: number[]): Record<PolicyWord, Record<"below" | "above", { applied: string; vector: number[] } | "INVALID_DIMENSIONS">> {
  const prefix = renormalised(native.slice(0, 384));
  const padded = renormalised([...native, ...new Array(768 - NATIVE).fill(0)]);
  return {
    reduce: { below: { applied: "reduce", vector: prefix }, above: "INVALID_DIMENSIONS" },
    pad: { below: { applied: "reduce", vector: prefix }, above: { applied: "pad", vector: padded } },
    ignore: { below: { applied: "ignore", vector: native }, above: { applied: "ignore", vector: native } },
    reject: { below: "INVALID_DIMENSIONS", above: "INVALID_DIMENSIONS" },
  };
}

const SIZES = { below: 384, above: 768 } as const;
const GRPC_POLICY: Record<PolicyWord, DimensionsPolicy> = {
  reduce: DimensionsPolicy.REDUCE,
  pad: DimensionsPolicy.PAD,
  ignore: DimensionsPolicy.IGNORE,
  reject: DimensionsPolicy.REJECT,
};

describe("dimensions policy on the real default model (server default reduce)", () => {
  let running: RunningService;
  let grpc: Client<typeof EmbedderService>;
  let native: number[];
  beforeAll(async () => {
    running = await startRealService();
    grpc = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
    const answer = await post(running.baseUrl, { texts: [TEXT] });
    expect([answer.status, answer.policyHeader, answer.body.metadata.dimensions_policy]).toEqual([200, "native", "native"]);
    native = answer.body.embeddings[0];
    expect(native).toHaveLength(NATIVE);
  });
  afterAll(() => running?.stop());

  it("answers the API design's three REST examples as the default policy says", async () => {
    const efficient = await post(running.baseUrl, { texts: [TEXT], dimensions: 384, model: "efficient" });
    expect([efficient.status, efficient.policyHeader, efficient.body.metadata.dimensions_policy, efficient.body.model_info.dimensions]).toEqual([200, "reduce", "reduce", 384]);
    expectClose(efficient.body.embeddings[0], renormalised(native.slice(0, 384)));

    const texts = ["Natural language processing", "Computer vision applications", "Recommendation systems"];
    const highQuality = await post(running.baseUrl, { texts, dimensions: 768, model: "high-quality" });
    expect(highQuality.status).toBe(400);
    expect(highQuality.body.error).toMatchObject({ code: "INVALID_DIMENSIONS", details: { dimensions: 768, native: NATIVE } });
    expect(highQuality.body.error.message).toContain(`produces ${NATIVE} dimensions`);
    const padded = await post(running.baseUrl, { texts, dimensions: 768, model: "high-quality", dimensions_policy: "pad" });
    expect([padded.status, padded.policyHeader, padded.body.metadata.dimensions_policy]).toEqual([200, "pad", "pad"]);
    expect(padded.body.embeddings.map((embedding: number[]) => embedding.length)).toEqual([768, 768, 768]);
    for (const embedding of padded.body.embeddings as number[][]) expect(embedding.slice(NATIVE).every((value) => value === 0)).toBe(true);

    const custom = await post(running.baseUrl, {
      texts: ["Scientific research paper abstract"],
      dimensions: 512,
      model: "custom",
      config: { quantization: "int8", use_fp16: true, batch_size: 16 },
    });
    expect([custom.status, custom.policyHeader, custom.body.embeddings[0].length]).toEqual([200, "native", 512]);
  });

  for (const policy of ["reduce", "pad", "ignore", "reject"] as const) {
    it(`${policy}: REST and gRPC answer the same vectors, checked against the native one, or the same refusal`, async () => {
      const expected = expectations(native)[policy];
      for (const side of ["below", "above"] as const) {
        const dimensions = SIZES[side];
        const outcome = expected[side];
        const rest = await post(running.baseUrl, { texts: [TEXT], dimensions, dimensions_policy: policy });
        let header: string | null = null;
        const viaGrpc = await grpc
          .generateEmbeddings({ texts: [TEXT], dimensions, dimensionsPolicy: GRPC_POLICY[policy] }, { onHeader: (headers) => (header = headers.get("x-embeddings-dimensions-policy")) })
          .catch((error: unknown) => ConnectError.from(error));
        if (outcome === "INVALID_DIMENSIONS") {
          expect([rest.status, rest.body.error.code], `${dimensions}`).toEqual([400, "INVALID_DIMENSIONS"]);
          expect(viaGrpc).toBeInstanceOf(ConnectError);
          expect([(viaGrpc as ConnectError).code, errorReason(viaGrpc)]).toEqual([Code.InvalidArgument, "INVALID_DIMENSIONS"]);
          if (policy === "reject") expect(rest.body.error.details.supported).toEqual([NATIVE]);
          continue;
        }
        expect([rest.status, rest.policyHeader, rest.body.metadata.dimensions_policy, rest.body.model_info.dimensions], `${dimensions}`)
          .toEqual([200, outcome.applied, outcome.applied, outcome.vector.length]);
        expectClose(rest.body.embeddings[0], outcome.vector);
        expect(viaGrpc).not.toBeInstanceOf(ConnectError);
        const answer = viaGrpc as Exclude<typeof viaGrpc, ConnectError>;
        expect([header, answer.metadata?.dimensionsPolicy, answer.modelInfo?.dimensions]).toEqual([outcome.applied, outcome.applied, outcome.vector.length]);
        expectClose(answer.embeddings[0].values, outcome.vector);
      }
      const exact = await post(running.baseUrl, { texts: [TEXT], dimensions: NATIVE, dimensions_policy: policy });
      expect([exact.status, exact.policyHeader]).toEqual([200, "native"]);
      expectClose(exact.body.embeddings[0], native);
    });
  }

  it("streams take the policy: GenerateEmbeddingsStream and StreamEmbeddings' config answer padded vectors", async () => {
    const padded = renormalised([...native, ...new Array(768 - NATIVE).fill(0)]);
    const items = [];
    for await (const item of grpc.generateEmbeddingsStream({ texts: [TEXT, TEXT], dimensions: 768, dimensionsPolicy: DimensionsPolicy.PAD })) items.push(item);
    expect(items.map((item) => item.modelInfo?.dimensions)).toEqual([768, 768]);
    for (const item of items) expectClose(item.embedding?.values ?? [], padded);
    async function* chunks() {
      yield { message: { case: "config" as const, value: { dimensions: 768, dimensionsPolicy: DimensionsPolicy.PAD, bufferSize: 1, maxLatencyMs: 10 } } };
      yield { message: { case: "chunk" as const, value: { chunkId: "only", text: TEXT, isFinal: true } } };
    }
    const answers = [];
    for await (const answer of grpc.streamEmbeddings(chunks())) answers.push(answer);
    expect(answers.map((answer) => answer.chunkId)).toEqual(["only"]);
    expectClose(answers[0].embedding?.values ?? [], padded);
  });

  it("the OpenAI dialect takes dimensions under the server's default policy", async () => {
    const response = await fetch(`${running.baseUrl}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "text-embedding-3-small", input: TEXT, dimensions: 384 }),
    });
    expect([response.status, response.headers.get("x-embeddings-dimensions-policy")]).toEqual([200, "reduce"]);
    expectClose(((await response.json()) as { data: Array<{ embedding: number[] }> }).data[0].embedding, renormalised(native.slice(0, 384)));
  });
});

describe("dimensions policy set by the server (SUTRA_DIMENSIONS_POLICY reject), with the cache on", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "sutra-dimensions-jobs-"));
  let running: RunningService;
  beforeAll(async () => {
    running = await startRealService({ dimensionsPolicy: "reject", cacheSize: 100, dataDir });
  });
  afterAll(async () => {
    await running?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("refuses other sizes unless the request names a policy; cached vectors are resized as fresh ones", async () => {
    const native = (await post(running.baseUrl, { texts: [TEXT] })).body.embeddings[0] as number[];
    const refused = await post(running.baseUrl, { texts: [TEXT], dimensions: 384 });
    expect([refused.status, refused.body.error.code, refused.body.error.details.supported]).toEqual([400, "INVALID_DIMENSIONS", [NATIVE]]);
    for (const [dimensions, policy, expected] of [
      [384, "reduce", renormalised(native.slice(0, 384))],
      [768, "pad", renormalised([...native, ...new Array(768 - NATIVE).fill(0)])],
      [384, "ignore", native],
    ] as const) {
      const answer = await post(running.baseUrl, { texts: [TEXT], dimensions, dimensions_policy: policy });
      expect([answer.status, answer.policyHeader]).toEqual([200, policy]);
      expectClose(answer.body.embeddings[0], [...expected]);
    }
  });

  it("a document job takes the policy: its dimensions and every chunk's vector are the policy's", async () => {
    const jobs = jobClient(running.baseUrl);
    const created = await jobs.create({ documents: [{ text: TEXT }], dimensions: 768, dimensions_policy: "pad" });
    const job = await jobs.waitFor(created.id);
    expect([job.status, job.dimensions]).toEqual(["completed", 768]);
    const [result] = await jobs.results(created.id);
    const unary = await post(running.baseUrl, { texts: [result.text], dimensions: 768, dimensions_policy: "pad" });
    expectClose(floats(result.embedding), unary.body.embeddings[0]);
  });
});
