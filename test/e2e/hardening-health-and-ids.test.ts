import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { startFakeHub, type FakeHub } from "../support/fake-hub.js";
import { startRealService, type RunningService } from "../support/real-service.js";

/**
 * Service health reflects the server's configuration and state, never one caller's options, and
 * words a client sends (model ids, enum words, presets, provider prefixes) are plain strings:
 * `constructor`, `__proto__` and the like never reach an object's prototype.
 */

/** Names every plain JavaScript object answers to through its prototype. */
const PROTOTYPE_WORDS = ["constructor", "toString", "hasOwnProperty", "__proto__", "valueOf"] as const;

interface Answer {
  status: number;
  body: any;
}

async function call(baseUrl: string, path: string, body?: unknown): Promise<Answer> {
  const response = await fetch(baseUrl + path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text) };
}

/** The three views of service health a load balancer may probe. */
async function healthViews(running: RunningService) {
  const rest = await call(running.baseUrl, "/v1/health");
  const seed = await call(running.baseUrl, "/v1/embeddings/health");
  const grpc = await createClient(Health, createGrpcTransport({ baseUrl: running.baseUrl })).check({});
  return { rest: rest.body.status as string, issues: rest.body.checks.issues as string[], seed: seed.status, grpc: grpc.status };
}

const HEALTHY = { rest: "healthy", issues: [], seed: 200, grpc: HealthCheckResponse_ServingStatus.SERVING };

let root: string;
let hub: FakeHub;
let running: RunningService;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "sutra-hardening-ids-"));
  hub = await startFakeHub();
  // No allowlist: every well-formed id reaches the registry's own lookups.
  running = await startRealService({ modelsDir: join(root, "models"), hfEndpoint: hub.url, modelAllowlist: "" });
}, 60_000);

afterAll(async () => {
  await running?.stop();
  await hub?.close();
  await rm(root, { recursive: true, force: true });
});

/** Polls DownloadModel until the model leaves `downloading`; returns the last answer. */
async function downloadUntilSettled(id: string): Promise<Answer> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const answer = await call(running.baseUrl, `/v1/models/${encodeURIComponent(id)}/download`, {});
    if (answer.status !== 200 || answer.body.status !== "downloading") return answer;
    if (Date.now() > deadline) throw new Error(`download of ${id} did not settle: ${JSON.stringify(answer.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe("a caller's hardware_profile changes only its own answer", () => {
  it.each(["h100", "extreme"])("config.hardware_profile %s on a CPU host: 200, the answer says CPU ran, service health stays healthy", async (tier) => {
    const answer = await call(running.baseUrl, "/v1/embeddings", { texts: ["gpu please"], config: { hardware_profile: tier } });
    expect(answer.status).toBe(200);
    expect(answer.body.model_info.execution_provider).toBe("cpu");
    expect(answer.body.metadata.hardware_profile).toBe(tier);
    expect(answer.body.embeddings).toHaveLength(1);
    expect(await healthViews(running)).toEqual(HEALTHY);
  });
});

describe("a failed download is the model's status, not the service's health", () => {
  it("a hub id the hub does not know: status failed with the reason on DownloadModel, GetModel and ListModels; health stays healthy", async () => {
    const last = await downloadUntilSettled("nobody/unknown-model");
    expect(last.status).toBe(200);
    expect(last.body).toMatchObject({ model_id: "nobody/unknown-model", status: "failed" });
    expect(last.body.message).toMatch(/not found|404/i);
    const model = await call(running.baseUrl, `/v1/models/${encodeURIComponent("nobody/unknown-model")}`);
    expect(model.body.model).toMatchObject({ id: "nobody/unknown-model", status: "failed", status_reason: last.body.message });
    const listed = await call(running.baseUrl, "/v1/models");
    expect(listed.body.models.find((entry: { id: string }) => entry.id === "nobody/unknown-model")).toMatchObject({ status: "failed" });
    expect(await healthViews(running)).toEqual(HEALTHY);
  });
});

describe("prototype words as client input are plain strings", () => {
  const connect = () => createClient(EmbedderService, createConnectTransport({ baseUrl: running.baseUrl, httpVersion: "1.1" }));

  it.each(PROTOTYPE_WORDS)("model %s: GenerateEmbeddings answers UNKNOWN_MODEL (404) on REST and Connect", async (word) => {
    const rest = await call(running.baseUrl, "/v1/embeddings", { texts: ["x"], model: word });
    expect(rest.status).toBe(404);
    expect(rest.body.error.code).toBe("UNKNOWN_MODEL");
    const failure = await connect().generateEmbeddings({ texts: ["x"], model: word }).then(() => undefined, (reason) => ConnectError.from(reason));
    expect(failure?.code).toBe(Code.NotFound);
    const seed = await call(running.baseUrl, "/v1/embeddings/batch", { texts: ["x"], model: word });
    expect(seed.status).toBe(404);
    const getModel = await call(running.baseUrl, `/v1/models/${encodeURIComponent(word)}`);
    expect(getModel.status).toBe(404);
    expect(getModel.body.error.code).toBe("UNKNOWN_MODEL");
  });

  it.each(PROTOTYPE_WORDS)("word %s as an enum word, preset, task or provider prefix: a typed 4xx", async (word) => {
    const refusals = [
      { config: { quantization: word } },
      { config: { hardware_profile: word } },
      { truncate: word },
      { embedding_types: [word] },
      { prompt_name: word },
      { model: `${word}:foo` },
    ];
    for (const fields of refusals) {
      const answer = await call(running.baseUrl, "/v1/embeddings", { texts: ["x"], ...fields });
      expect(answer.status, JSON.stringify(fields)).toBeGreaterThanOrEqual(400);
      expect(answer.status, JSON.stringify(fields)).toBeLessThan(500);
      expect(answer.body.error.code, JSON.stringify(fields)).toMatch(/^(INVALID_ARGUMENT|UNKNOWN_MODEL)$/);
    }
    const openAi = await call(running.baseUrl, "/v1/embeddings", { input: "x", model: word, encoding_format: word });
    expect(openAi.status).toBe(400);
    const seedProvider = await call(running.baseUrl, "/v1/embeddings/batch", { texts: ["x"], provider: word });
    expect(seedProvider.status).toBe(404);
    const filtered = await call(running.baseUrl, `/v1/models?hardware_profile=${encodeURIComponent(word)}`);
    expect(filtered.status).toBe(400);
    const jobs = await call(running.baseUrl, `/v1/jobs?status=${encodeURIComponent(word)}`);
    expect([400, 501]).toContain(jobs.status);
  });

  it.each(PROTOTYPE_WORDS)("POST /v1/models/%s/download: a typed answer, and ListModels still answers on REST and Connect", async (word) => {
    const answer = await downloadUntilSettled(word);
    if (answer.status === 200) {
      // A well-formed bare hub id: downloaded like any other, it fails at the hub and says so on its own status.
      expect(answer.body).toMatchObject({ model_id: word, status: "failed" });
      expect(answer.body.message).toMatch(/not found|404/i);
    } else {
      expect(answer.status).toBe(400);
      expect(answer.body.error.code).toBe("INVALID_ARGUMENT");
    }
    const listed = await call(running.baseUrl, "/v1/models");
    expect(listed.status).toBe(200);
    expect(listed.body.models.every((entry: { id: unknown }) => typeof entry.id === "string")).toBe(true);
    expect((await connect().listModels({})).models.length).toBe(listed.body.models.length);
    expect((await call(running.baseUrl, "/v1/embeddings/models")).status).toBe(200);
    // Asking for the model now: the id is its own failed entry (MODEL_NOT_READY) or still unknown, never a 500.
    const embed = await call(running.baseUrl, "/v1/embeddings", { texts: ["x"], model: word });
    if (answer.status === 200) {
      expect(embed.status).toBe(503);
      expect(embed.body.error.code).toBe("MODEL_NOT_READY");
      expect(embed.body.error.message).toContain(`model ${word} failed`);
      expect((await call(running.baseUrl, `/v1/models/${word}`)).body.model).toMatchObject({ id: word, status: "failed" });
    } else {
      expect(embed.status).toBe(404);
      expect(embed.body.error.code).toBe("UNKNOWN_MODEL");
    }
    expect(await healthViews(running)).toEqual(HEALTHY);
  });
});
