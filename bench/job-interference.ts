/**
 * `npx tsx bench/job-interference.ts`: online latency while a document job
 * runs (issue 9). The real service runs as `sutra serve` in a child process
 * (cache off, a fresh data folder); this process sends single-text requests
 * over REST at a fixed rate (open loop, so a slow answer does not slow the
 * sending) and measures their latency:
 *
 * 1. `batch`: one job batch's inference time, as the server reports it
 *    (`x-inference-time`) for a GenerateEmbeddings call shaped like a job
 *    batch: 64 texts cut to the model's 128-token window (median of 7);
 * 2. `idle`: single-text requests with nothing else running;
 * 3. `job (chunking)`: the same load from the moment a large job is created
 *    until its documents are all cut into chunks;
 * 4. `job (embedding)`: the same load while the job's chunks are embedded;
 * 5. `job alone`: the job's throughput with no online load, for reference.
 *
 * The acceptance bound: p95 during the job <= idle p95 + one batch's inference
 * time. Options: `--rate N` (requests per second, default 20), `--seconds S`
 * (per phase, default 20), `--documents N` (default 200, about 10 KB each),
 * `--json FILE` (raw numbers).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { percentile } from "./stats.js";

const { values } = parseArgs({
  options: {
    rate: { type: "string", default: "20" },
    seconds: { type: "string", default: "20" },
    documents: { type: "string", default: "200" },
    json: { type: "string" },
  },
});
const rate = Number(values.rate);
const seconds = Number(values.seconds);
const documentCount = Number(values.documents);

const queries = JSON.parse(readFileSync(new URL("./corpora/queries.json", import.meta.url), "utf8")) as string[];
const passages = JSON.parse(readFileSync(new URL("./corpora/passages.json", import.meta.url), "utf8")) as string[];
const log = (message: string) => process.stderr.write(`[job-interference] ${message}\n`);

/** `sutra serve` in its own process group; resolves with its base URL once the default model is loaded. */
async function startServer(dataDir: string): Promise<{ baseUrl: string; stop(): Promise<void> }> {
  const child = spawn("npx", ["tsx", "src/cli/main.ts", "serve", "--port", "0", "--log-level", "info"], {
    cwd: new URL("..", import.meta.url).pathname,
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
    env: { ...process.env, SUTRA_DATA_DIR: dataDir, SUTRA_CACHE_SIZE: "0", SUTRA_MODELS_DIR: "/nonexistent-models-dir" },
  });
  const exited = new Promise<void>((resolve) => child.stdout!.once("close", () => resolve()));
  let port = 0;
  await new Promise<void>((resolve, reject) => {
    let buffered = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        try {
          const parsed = JSON.parse(line) as { msg?: string; address?: { port: number } };
          if (parsed.msg === "listening") port = parsed.address?.port ?? 0;
          if (parsed.msg === "default model loaded") resolve();
        } catch {
          continue;
        }
      }
    });
    void exited.then(() => reject(new Error("the server exited before it was ready")));
  });
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    async stop() {
      process.kill(-child.pid!, "SIGTERM");
      await exited;
    },
  };
}

async function post(url: string, body: unknown): Promise<Response> {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`${url} answered ${response.status}: ${await response.text()}`);
  return response;
}

interface LoadResult {
  sent: number;
  failed: number;
  latenciesMs: number[];
}

/** Sends one single-text request every 1/rate s until `stop()` resolves true; latency per answered request. */
async function pacedLoad(baseUrl: string, until: () => Promise<boolean> | boolean): Promise<LoadResult> {
  const result: LoadResult = { sent: 0, failed: 0, latenciesMs: [] };
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  for (let index = 0; ; index++) {
    const due = started + (index * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (await until()) break;
    const text = queries[(index * 7) % queries.length];
    const sentAt = performance.now();
    result.sent++;
    const request = post(`${baseUrl}/v1/embeddings`, { texts: [text] })
      .then(async (response) => {
        await response.arrayBuffer();
        result.latenciesMs.push(performance.now() - sentAt);
      })
      .catch(() => {
        result.failed++;
      })
      .finally(() => inFlight.delete(request));
    inFlight.add(request);
  }
  await Promise.all(inFlight);
  return result;
}

const forSeconds = (limit: number) => {
  const end = performance.now() + limit * 1000;
  return () => performance.now() >= end;
};

function summary(load: LoadResult) {
  return {
    requests: load.latenciesMs.length,
    failed: load.failed,
    p50: percentile(load.latenciesMs, 0.5),
    p95: percentile(load.latenciesMs, 0.95),
    p99: percentile(load.latenciesMs, 0.99),
    max: Math.max(...load.latenciesMs),
  };
}

/** About 10 KB documents of corpus passages, each starting elsewhere. */
function documents(count: number) {
  return Array.from({ length: count }, (_, index) => {
    const parts: string[] = [];
    for (let step = 0, size = 0; size < 10_000; step++) {
      const passage = passages[(index * 37 + step) % passages.length];
      parts.push(passage);
      size += passage.length + 2;
    }
    return { id: `doc-${index}`, text: parts.join("\n\n") };
  });
}

interface JobJson {
  id: string;
  status: string;
  documents_chunked: number;
  document_count: number;
  total_chunks: number;
  completed_chunks: number;
}

async function getJob(baseUrl: string, id: string): Promise<JobJson> {
  return (await (await fetch(`${baseUrl}/v1/jobs/${id}`)).json()) as JobJson;
}

const dataDir = mkdtempSync(join(tmpdir(), "sutra-bench-jobs-"));
const server = await startServer(dataDir);
try {
  log(`server at ${server.baseUrl}; ${availableParallelism()} cores, load average ${loadavg()[0].toFixed(1)}`);
  for (let index = 0; index < 50; index++) await (await post(`${server.baseUrl}/v1/embeddings`, { texts: [queries[index]] })).arrayBuffer();

  const batchTexts = passages.slice(0, 64).map((passage) => `${passage} ${passage} ${passage} ${passage}`);
  const batchTimes: number[] = [];
  for (let run = 0; run < 7; run++) {
    const response = await post(`${server.baseUrl}/v1/embeddings`, { texts: batchTexts, config: { batch_size: 64 } });
    const body = (await response.json()) as { usage: { prompt_tokens: number } };
    if (body.usage.prompt_tokens !== 64 * 128) throw new Error(`the batch-shaped request had ${body.usage.prompt_tokens} tokens, not 64 x 128`);
    batchTimes.push(Number(response.headers.get("x-inference-time")));
  }
  const batchMs = percentile(batchTimes, 0.5);
  log(`one job batch (64 x 128 tokens): ${batchMs.toFixed(1)} ms inference (median of 7)`);

  log(`idle: ${rate} single-text requests/s for ${seconds} s`);
  const idle = summary(await pacedLoad(server.baseUrl, forSeconds(seconds)));

  const created = (await (await post(`${server.baseUrl}/v1/jobs`, { documents: documents(documentCount), chunking: { chunk_size: 128 } })).json()) as JobJson;
  log(`job ${created.id} created (${documentCount} documents); load while it chunks`);
  const chunkingStarted = performance.now();
  const chunkingLoad = await pacedLoad(server.baseUrl, async () => {
    const job = await getJob(server.baseUrl, created.id);
    return job.documents_chunked === job.document_count;
  });
  const chunkingSeconds = (performance.now() - chunkingStarted) / 1000;
  const chunking = summary(chunkingLoad);

  const before = await getJob(server.baseUrl, created.id);
  const embeddingStarted = performance.now();
  log(`job has ${before.total_chunks} chunks; load while it embeds for ${seconds} s`);
  const embedding = summary(await pacedLoad(server.baseUrl, forSeconds(seconds)));
  const during = await getJob(server.baseUrl, created.id);
  const underLoadRate = (during.completed_chunks - before.completed_chunks) / ((performance.now() - embeddingStarted) / 1000);
  if (during.status !== "running") log(`warning: the job was ${during.status} before the phase ended; use more --documents`);

  log("job alone for 10 s");
  const aloneStarted = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 10_000));
  const after = await getJob(server.baseUrl, created.id);
  const aloneRate = (after.completed_chunks - during.completed_chunks) / ((performance.now() - aloneStarted) / 1000);
  await post(`${server.baseUrl}/v1/jobs/${created.id}/cancel`, {});

  const bound = idle.p95 + batchMs;
  const results = {
    cores: availableParallelism(),
    loadAverage: loadavg()[0],
    rate,
    seconds,
    documents: documentCount,
    chunks: before.total_chunks,
    batchMs,
    idle,
    chunking: { ...chunking, seconds: chunkingSeconds },
    embedding,
    jobChunksPerSecond: { underOnlineLoad: underLoadRate, alone: aloneRate },
    boundMs: bound,
    withinBound: embedding.p95 <= bound && chunking.p95 <= bound,
  };
  const row = (name: string, entry: ReturnType<typeof summary>) =>
    `| ${name} | ${entry.requests} | ${entry.failed} | ${entry.p50.toFixed(1)} | ${entry.p95.toFixed(1)} | ${entry.p99.toFixed(1)} | ${entry.max.toFixed(1)} |`;
  console.log([
    `## Online latency while a document job runs (${availableParallelism()} cores, load average ${results.loadAverage.toFixed(1)})`,
    "",
    `Single-text REST requests at ${rate}/s (open loop); job: ${documentCount} documents, ${before.total_chunks} chunks of up to 128 tokens.`,
    "",
    "| phase | answered | failed | p50 ms | p95 ms | p99 ms | max ms |",
    "|---|---|---|---|---|---|---|",
    row("idle", idle),
    row(`job chunking (${chunkingSeconds.toFixed(1)} s)`, chunking),
    row("job embedding", embedding),
    "",
    `One job batch (64 x 128 tokens): ${batchMs.toFixed(1)} ms inference. Bound: idle p95 + batch = ${bound.toFixed(1)} ms -> ${results.withinBound ? "within" : "NOT within"}.`,
    `Job throughput: ${underLoadRate.toFixed(1)} chunks/s under the online load, ${aloneRate.toFixed(1)} chunks/s alone.`,
  ].join("\n"));
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(results, null, 2));
} finally {
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
