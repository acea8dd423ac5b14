import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeClient } from "../../src/client/node.js";
import { MANIFEST_FILE } from "../../src/models/manifest.js";
import { writeTinyBertModel } from "../support/tiny-models.js";
import { filesOfFolder, startFakeHub, type FakeHub } from "../support/fake-hub.js";
import { startRealService, type RunningService } from "../support/real-service.js";

const SUTRA = new URL("../../bin/sutra.mjs", import.meta.url).pathname;

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function sutra(args: string[], server: string): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SUTRA, ...args], { env: { ...process.env, SUTRA_URL: server }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("sutra jobs, models and health (CLI) against a real service", () => {
  let running: RunningService;
  let hub: FakeHub;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "sutra-cli-commands-"));
    await writeTinyBertModel(join(dir, "tiny-source"), { hiddenSize: 64, intermediateSize: 128, pooling: "mean" });
    hub = await startFakeHub();
    hub.add({ id: "tiny/cli", commit: "f".repeat(40), files: await filesOfFolder(join(dir, "tiny-source")) });
    running = await startRealService({ dataDir: join(dir, "data"), modelsDir: join(dir, "models"), hfEndpoint: hub.url, modelAllowlist: "tiny/*" });
  }, 60_000);
  afterAll(async () => {
    await running?.stop();
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("health prints GetHealth as JSON and exits 0; an unreachable server exits 1", async () => {
    const healthy = await sutra(["health"], running.baseUrl);
    expect(healthy.code, healthy.stderr).toBe(0);
    expect(JSON.parse(healthy.stdout)).toMatchObject({ status: "HEALTH_STATUS_HEALTHY", defaultModel: "universal-sentence-encoder-lite" });
    const unreachable = await sutra(["health", "--retries", "1"], "http://127.0.0.1:1");
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain("sutra health: http://127.0.0.1:1:");
  });

  it("jobs submit --wait, status, list, results and cancel", async () => {
    const documents = join(dir, "documents.jsonl");
    const long = Array.from({ length: 60 }, (_, index) => `Sentence number ${index} talks about vectors and search.`).join(" ");
    writeFileSync(documents, [
      JSON.stringify({ id: "short", text: "A short document.", metadata: { source: "cli-test" } }),
      JSON.stringify({ id: "long", text: long }),
    ].join("\n"));
    const submitted = await sutra(["jobs", "submit", documents, "--chunk-size", "64", "--chunk-overlap", "8", "--wait", "--poll-ms", "200"], running.baseUrl);
    expect(submitted.code, submitted.stderr).toBe(0);
    const job = JSON.parse(submitted.stdout) as { id: string; status: string; totalChunks: string; completedChunks: string; documentCount: number };
    expect(job).toMatchObject({ status: "completed", documentCount: 2 });
    expect(Number(job.totalChunks)).toBeGreaterThan(2);
    expect(job.completedChunks).toBe(job.totalChunks);

    const status = await sutra(["jobs", "status", job.id], running.baseUrl);
    expect(JSON.parse(status.stdout)).toMatchObject({ id: job.id, status: "completed" });
    const list = await sutra(["jobs", "list", "--status", "completed"], running.baseUrl);
    expect((JSON.parse(list.stdout) as { jobs: Array<{ id: string }> }).jobs.map((entry) => entry.id)).toContain(job.id);

    const resultsPath = join(dir, "results.jsonl");
    const results = await sutra(["jobs", "results", job.id, "-o", resultsPath], running.baseUrl);
    expect(results.code, results.stderr).toBe(0);
    const rows = readFileSync(resultsPath, "utf8").trimEnd().split("\n").map((line) => JSON.parse(line) as { document_id: string; chunk_index: number; text: string; metadata?: unknown; embedding: number[] });
    expect(rows).toHaveLength(Number(job.totalChunks));
    expect(rows[0]).toMatchObject({ document_id: "short", chunk_index: 0, text: "A short document.", metadata: { source: "cli-test" } });
    expect(rows.filter((row) => row.document_id === "long").map((row) => row.chunk_index)).toEqual(Array.from({ length: rows.length - 1 }, (_, index) => index));
    // A chunk's vector is the chunk text's vector (within the batch-invariance bar, 1e-6).
    const client = createNodeClient({ baseUrl: running.baseUrl });
    const direct = await client.embed({ texts: [rows[0].text] });
    client.close();
    const worst = Math.max(...rows[0].embedding.map((value, index) => Math.abs(value - direct.embeddings[0].values[index])));
    expect(worst).toBeLessThanOrEqual(1e-6);

    const resumed = await sutra(["jobs", "results", job.id, "--offset", String(rows.length - 1), "--no-text"], running.baseUrl);
    const tail = resumed.stdout.trimEnd().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(tail).toHaveLength(1);
    expect(tail[0]).not.toHaveProperty("text");

    const cancelled = await sutra(["jobs", "cancel", job.id], running.baseUrl);
    expect(JSON.parse(cancelled.stdout)).toMatchObject({ id: job.id, status: "completed" });
    const missing = await sutra(["jobs", "status", "no-such-job"], running.baseUrl);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("(JOB_NOT_FOUND)");
  }, 180_000);

  it("models download polls DownloadModel until the model is served; models list shows it", async () => {
    const download = await sutra(["models", "download", "tiny/cli", "--poll-ms", "200"], running.baseUrl);
    expect(download.code, download.stderr).toBe(0);
    expect(JSON.parse(download.stdout)).toMatchObject({ model_id: "tiny/cli", progress: 1 });
    expect(["ready", "loaded"]).toContain(JSON.parse(download.stdout).status);
    const table = await sutra(["models", "list"], running.baseUrl);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(/^ID\s+STATUS\s+DIMS/);
    expect(table.stdout).toMatch(/universal-sentence-encoder-lite\s+loaded\s+512/);
    expect(table.stdout).toMatch(/tiny\/cli\s+(ready|loaded)\s+64/);
    const json = await sutra(["models", "list", "--json", "--dimensions", "512"], running.baseUrl);
    expect((JSON.parse(json.stdout) as Array<{ id: string }>).map((model) => model.id)).toContain("universal-sentence-encoder-lite");
  }, 120_000);

  it("models build <folder> writes gated precision variants and the manifest of a sentence-transformers folder", async () => {
    const folder = join(dir, "tiny-build");
    await writeTinyBertModel(folder, { hiddenSize: 64, intermediateSize: 128, pooling: "mean" });
    const build = await sutra(["models", "build", folder, "--id", "tiny/build"], running.baseUrl);
    expect(build.code, build.stderr).toBe(0);
    const answer = JSON.parse(build.stdout) as { model_id: string; dimensions: number; precisions: string[] };
    expect(answer).toMatchObject({ model_id: "tiny/build", dimensions: 64 });
    expect(answer.precisions).toContain("fp32");
    expect(answer.precisions.length).toBeGreaterThan(1);
    const manifest = JSON.parse(readFileSync(join(folder, MANIFEST_FILE), "utf8")) as { variants: Record<string, { file: string }>; files: Record<string, string> };
    for (const variant of Object.values(manifest.variants)) {
      expect(existsSync(join(folder, variant.file))).toBe(true);
      expect(manifest.files[variant.file]).toMatch(/^[0-9a-f]{64}$/);
    }
  });
});
