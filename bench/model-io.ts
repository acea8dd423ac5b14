/**
 * Model I/O measurements of issue 6, run alone (not part of `npm run bench`):
 * `npx tsx bench/model-io.ts [--mb 86] [--requests 200]`.
 *
 * 1. Download: a local server speaking the hub's routes (test/support/fake-hub.ts) serves a
 *    sentence-transformers folder whose ONNX file is `--mb` MB; `downloadHubModel` fetches and
 *    verifies it into a temporary models folder (throughput in MB/s, loopback), then again with
 *    the connection dropped at 50% (resume with Range: total time, bytes fetched twice).
 * 2. Cache: the real service with the embedding cache on; one short text per REST request, each
 *    text new (miss: tokenize + inference) or repeated (hit), sequentially; mean and p50 latency.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { downloadHubModel } from "../src/models/hub/download-hub-model.js";
import { writeTinyBertModel } from "../test/support/tiny-models.js";
import { filesOfFolder, startFakeHub } from "../test/support/fake-hub.js";
import { startRealService } from "../test/support/real-service.js";

const { values } = parseArgs({ options: { mb: { type: "string", default: "86" }, requests: { type: "string", default: "200" } } });
const root = await mkdtemp(join(tmpdir(), "sutra-model-io-"));
const log = (message: string) => process.stderr.write(`[model-io] ${message}\n`);

try {
  await writeTinyBertModel(join(root, "source"));
  const files = (await filesOfFolder(join(root, "source"))).map((file) =>
    file.path === "onnx/model.onnx" ? { ...file, bytes: randomBytes(Number(values.mb) * 2 ** 20) } : file);
  const totalMb = files.reduce((sum, file) => sum + file.bytes.length, 0) / 2 ** 20;
  const hub = await startFakeHub();
  hub.add({ id: "bench/plain", commit: "1".repeat(40), files });
  hub.add({ id: "bench/resume", commit: "2".repeat(40), files, dropHalfwayOnce: "onnx/model.onnx" });
  const lines: string[] = ["## Model I/O", "", "| measurement | result |", "|---|---|"];
  try {
    for (const repo of ["bench/plain", "bench/resume"]) {
      const modelsDir = join(root, repo.replace("/", "-"));
      let fetched = 0;
      const started = performance.now();
      await downloadHubModel({ hub: { endpoint: hub.url }, repo, modelsDir, onProgress: (progress) => { fetched = progress.bytesFetched; } });
      const seconds = (performance.now() - started) / 1000;
      const line = `download of ${totalMb.toFixed(1)} MB ${repo === "bench/resume" ? "with the connection dropped at 50%, resumed" : ""} (fetch + sha256/blob-id verify + manifest + rename, loopback)`;
      lines.push(`| ${line} | ${seconds.toFixed(2)} s, ${(totalMb / seconds).toFixed(0)} MB/s; ${(fetched / 2 ** 20).toFixed(1)} MB fetched |`);
      log(lines.at(-1) ?? "");
    }
  } finally {
    await hub.close();
  }

  const requests = Number(values.requests);
  const running = await startRealService({ cacheSize: 10_000, cacheTtlS: 3600 });
  try {
    const post = async (text: string) => {
      const started = performance.now();
      const response = await fetch(`${running.baseUrl}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ texts: [text] }) });
      await response.json();
      return performance.now() - started;
    };
    const summarize = (samples: number[]) => {
      const sorted = [...samples].sort((a, b) => a - b);
      return `mean ${(samples.reduce((sum, value) => sum + value, 0) / samples.length).toFixed(2)} ms, p50 ${sorted[Math.floor(sorted.length / 2)].toFixed(2)} ms`;
    };
    for (let index = 0; index < 20; index++) await post(`warm up request number ${index}`);
    const misses: number[] = [];
    for (let index = 0; index < requests; index++) misses.push(await post(`a new sentence about search number ${index} and its vector`));
    const hits: number[] = [];
    for (let index = 0; index < requests; index++) hits.push(await post(`a new sentence about search number ${index % 10} and its vector`));
    const batches = (await running.service.metrics.inferenceBatchesTotal.get()).values[0]?.value ?? 0;
    lines.push(`| REST, 1 short text per request, default model, cache miss (${requests} sequential) | ${summarize(misses)} |`);
    lines.push(`| same, cache hit | ${summarize(hits)} |`);
    lines.push(`| inference batches run (warm-up + misses only) | ${batches} |`);
  } finally {
    await running.stop();
  }
  console.log(lines.join("\n"));
} finally {
  await rm(root, { recursive: true, force: true });
}
