import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MANIFEST_FILE, type ModelManifest } from "../../src/models/manifest.js";
import { writeTinyBertModel } from "../support/tiny-models.js";
import { filesOfFolder, startFakeHub, type FakeHub, type FakeHubFile } from "../support/fake-hub.js";
import { startRealService, type RunningService } from "../support/real-service.js";

/** DownloadModel against a local server speaking the hub's routes, on the real service. */

interface DownloadAnswer {
  model_id: string;
  status: string;
  progress: number;
  eta_seconds: number;
  bytes_downloaded: string | number;
  bytes_total: string | number;
  message: string;
}

const TOKEN = "hf_test_token_123";
let root: string;
let modelsDir: string;
let hub: FakeHub;
let running: RunningService;
let files: FakeHubFile[];

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

async function download(id: string): Promise<{ status: number; body: DownloadAnswer & { error?: { code: string } } }> {
  const response = await fetch(`${running.baseUrl}/v1/models/${encodeURIComponent(id)}/download`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  return { status: response.status, body: await response.json() };
}

/** Polls DownloadModel until the model leaves `downloading`; returns every answer seen. */
async function downloadUntilSettled(id: string): Promise<DownloadAnswer[]> {
  const answers: DownloadAnswer[] = [];
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { status, body } = await download(id);
    expect(status).toBe(200);
    answers.push(body);
    if (body.status !== "downloading") return answers;
    if (Date.now() > deadline) throw new Error(`download of ${id} did not settle: ${JSON.stringify(body)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function getModel(id: string) {
  const response = await fetch(`${running.baseUrl}/v1/models/${encodeURIComponent(id)}`);
  return { status: response.status, body: (await response.json()) as { model: Record<string, unknown> } };
}

const resolveRequests = (repo: string, file: string) =>
  hub.requests.filter((request) => request.path.startsWith(`/${repo}/resolve/`) && request.path.endsWith(`/${file}`));

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "sutra-downloads-"));
  modelsDir = join(root, "models");
  await writeTinyBertModel(join(root, "source"), { hiddenSize: 64, intermediateSize: 128, pooling: "mean" });
  files = await filesOfFolder(join(root, "source"));
  hub = await startFakeHub();
  const extra: FakeHubFile = { path: "pytorch_model.bin", bytes: Buffer.alloc(4096, 7), lfs: true };
  hub.add({ id: "tiny/good", commit: "a".repeat(40), files: [...files, extra] });
  hub.add({ id: "tiny/resume", commit: "b".repeat(40), files, dropHalfwayOnce: "onnx/model.onnx" });
  hub.add({ id: "tiny/corrupt", commit: "c".repeat(40), files, wrongSha256: "0".repeat(64) });
  hub.add({ id: "tiny/escape", commit: "d".repeat(40), files, extraListing: ["../../escape.json"] });
  hub.add({ id: "tiny/slow", commit: "e".repeat(40), files, chunkDelayMs: 40 });
  running = await startRealService({ modelsDir, hfEndpoint: hub.url, hfToken: TOKEN, modelAllowlist: "tiny/*", cacheSize: 0 });
}, 60_000);

afterAll(async () => {
  await running?.stop();
  await hub?.close();
  await rm(root, { recursive: true, force: true });
});

describe("DownloadModel from a Hugging Face-compatible hub", () => {
  it("installs a model: only the needed files, verified, sha256 of every file in the manifest, then served", async () => {
    const answers = await downloadUntilSettled("tiny/good");
    const last = answers.at(-1);
    expect(last?.status, last?.message).toBe("loaded");
    expect(last?.progress).toBe(1);

    const dir = join(modelsDir, "tiny--good");
    const manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), "utf8")) as ModelManifest;
    expect(manifest.id).toBe("tiny/good");
    expect(manifest.hub?.commit).toBe("a".repeat(40));
    expect(manifest.pooling).toBe("mean");
    const variants = Object.entries(manifest.variants).filter(([precision]) => precision !== "fp32");
    expect(variants.length, "precision variants built and gated after the download").toBeGreaterThan(0);
    for (const [, variant] of variants) {
      expect(variant?.gate?.passed).toBe(true);
      expect(manifest.files[variant?.file ?? ""]).toMatch(/^[0-9a-f]{64}$/);
    }
    for (const file of files) expect(manifest.files[file.path], file.path).toBe(sha256(file.bytes));
    for (const [file, digest] of Object.entries(manifest.files)) expect(sha256(await readFile(join(dir, file))), file).toBe(digest);
    expect(existsSync(join(dir, "pytorch_model.bin"))).toBe(false);
    expect(resolveRequests("tiny/good", "pytorch_model.bin")).toHaveLength(0);
    expect(hub.requests.filter((request) => request.path.startsWith("/tiny/good/resolve/")).every((request) => request.path.includes(`/resolve/${"a".repeat(40)}/`))).toBe(true);
    expect(hub.requests.every((request) => request.authorization === `Bearer ${TOKEN}`)).toBe(true);

    const model = await getModel("tiny/good");
    expect(model.status).toBe(200);
    expect(model.body.model).toMatchObject({ id: "tiny/good", status: "loaded", dimensions: 64, revision: "a".repeat(40), pooling: "mean" });

    const response = await fetch(`${running.baseUrl}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ texts: ["hello world"], model: "tiny/good", config: { quantization: "none" } }),
    });
    const body = (await response.json()) as { embeddings: number[][]; model_info: { model_id: string; precision: string } };
    expect(response.status).toBe(200);
    expect(body.model_info).toMatchObject({ model_id: "tiny/good", precision: "fp32" });
    expect(body.embeddings[0]).toHaveLength(64);
  });

  it("resumes a connection dropped at 50% with Range and verifies the file", async () => {
    const answers = await downloadUntilSettled("tiny/resume");
    expect(answers.at(-1)?.status, answers.at(-1)?.message).toBe("loaded");
    const onnx = files.find((file) => file.path === "onnx/model.onnx");
    const requests = resolveRequests("tiny/resume", "onnx/model.onnx");
    expect(requests).toHaveLength(2);
    expect(requests[0].range).toBeUndefined();
    const resumedFrom = Number(/^bytes=(\d+)-$/.exec(requests[1].range ?? "")?.[1]);
    expect(resumedFrom).toBeGreaterThan(0);
    expect(resumedFrom).toBeLessThanOrEqual(Math.floor((onnx?.bytes.length ?? 0) / 2));
    const installed = await readFile(join(modelsDir, "tiny--resume", "onnx/model.onnx"));
    expect(sha256(installed)).toBe(sha256(onnx?.bytes ?? Buffer.alloc(0)));
  });

  it("a sha256 mismatch ends in failed with a clear reason, no partial model visible, service health unchanged", async () => {
    const answers = await downloadUntilSettled("tiny/corrupt");
    const last = answers.at(-1);
    expect(last?.status).toBe("failed");
    expect(last?.message).toMatch(/onnx\/model\.onnx failed verification: sha256 [0-9a-f]{64} does not match the hub's 0{64}/);
    expect(existsSync(join(modelsDir, "tiny--corrupt"))).toBe(false);
    expect(readdirSync(join(modelsDir, ".downloads")).filter((name) => name.startsWith("tiny--corrupt"))).toEqual([]);

    const model = await getModel("tiny/corrupt");
    expect(model.body.model).toMatchObject({ status: "failed" });
    expect(String(model.body.model.status_reason)).toContain("failed verification");
    const embed = await fetch(`${running.baseUrl}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ texts: ["x"], model: "tiny/corrupt" }),
    });
    expect(embed.status).toBe(503);
    expect(((await embed.json()) as { error: { code: string } }).error.code).toBe("MODEL_NOT_READY");
    // The failure is the model's own status; the service's health is not one download's to change.
    const health = (await (await fetch(`${running.baseUrl}/v1/health`)).json()) as { status: string; checks: { issues: string[] } };
    expect(health.status).toBe("healthy");
    expect(health.checks.issues.join("\n")).not.toContain("tiny/corrupt");
  });

  it("rejects a listing whose file names escape the models folder", async () => {
    const answers = await downloadUntilSettled("tiny/escape");
    const last = answers.at(-1);
    expect(last?.status).toBe("failed");
    expect(last?.message).toContain("escape the model folder");
    expect(last?.message).toContain("../../escape.json");
    expect(resolveRequests("tiny/escape", "model.onnx")).toHaveLength(0);
    expect(existsSync(join(dirname(modelsDir), "escape.json"))).toBe(false);
    expect(existsSync(join(modelsDir, "tiny--escape"))).toBe(false);
  });

  it("two concurrent DownloadModel calls make one download; repeated calls report progress and ETA", async () => {
    const [first, second] = await Promise.all([download("tiny/slow"), download("tiny/slow")]);
    expect(first.body.status).toBe("downloading");
    expect(second.body.status).toBe("downloading");
    const answers = await downloadUntilSettled("tiny/slow");
    expect(answers.at(-1)?.status, answers.at(-1)?.message).toBe("loaded");
    const midway = answers.filter((answer) => answer.status === "downloading" && answer.progress > 0 && answer.progress < 1);
    expect(midway.length).toBeGreaterThan(0);
    expect(midway.some((answer) => answer.eta_seconds > 0 && Number(answer.bytes_total) > Number(answer.bytes_downloaded))).toBe(true);
    const progress = midway.map((answer) => answer.progress);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
    expect(hub.requests.filter((request) => request.path.startsWith("/api/models/tiny/slow/"))).toHaveLength(1);
    expect(resolveRequests("tiny/slow", "onnx/model.onnx")).toHaveLength(1);
  });

  it("answers FORBIDDEN for a model off the allowlist and INVALID_ARGUMENT for a malformed id", async () => {
    const forbidden = await download("other/model");
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.error?.code).toBe("FORBIDDEN");
    const malformed = await download("../etc");
    expect(malformed.status).toBe(400);
  });
});
