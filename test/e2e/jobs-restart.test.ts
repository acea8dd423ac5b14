import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { checkJobResults, floats, jobClient, jobDocuments, type JobJson } from "../support/job-documents.js";

/** The CLI's entry point; it runs the compiled JavaScript in dist/ (`npm test` compiles first). */
const SUTRA = fileURLToPath(new URL("../../bin/sutra.mjs", import.meta.url));

/** `sutra serve` (compiled, with plain node) in a child process of its own process group, with its JSON log lines. */
function startServer(dataDir: string): { child: ChildProcess; port: Promise<number>; loaded: Promise<void>; exited: Promise<void>; lines: Array<Record<string, unknown>> } {
  const child = spawn(process.execPath, [SUTRA, "serve", "--port", "0", "--log-level", "info"], {
    cwd: process.cwd(),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
    env: { ...process.env, SUTRA_MODELS_DIR: "/nonexistent-models-dir", SUTRA_DATA_DIR: dataDir, SUTRA_CACHE_SIZE: "0" },
  });
  const lines: Array<Record<string, unknown>> = [];
  let buffered = "";
  let onLine = (): void => undefined;
  child.stdout!.on("data", (chunk: Buffer) => {
    buffered += chunk.toString("utf8");
    const parts = buffered.split("\n");
    buffered = parts.pop() ?? "";
    for (const part of parts) {
      try {
        lines.push(JSON.parse(part) as Record<string, unknown>);
      } catch {
        continue;
      }
      onLine();
    }
  });
  child.stderr!.on("data", (chunk: Buffer) => process.stderr.write(`[server stderr] ${chunk}`));
  const exited = new Promise<void>((resolve) => child.stdout!.once("close", () => resolve()));
  const waitFor = (message: string) => new Promise<Record<string, unknown>>((resolve, reject) => {
    const check = () => {
      const found = lines.find((line) => line.msg === message);
      if (found !== undefined) resolve(found);
    };
    onLine = check;
    check();
    void exited.then(() => reject(new Error(`the server exited before logging "${message}"`)));
  });
  const port = waitFor("listening").then((line) => (line.address as { port: number }).port);
  const loaded = port.then(() => waitFor("default model loaded")).then(() => undefined);
  // A test that expects the server to refuse to start awaits `exited` alone; these may then reject unobserved.
  port.catch(() => undefined);
  loaded.catch(() => undefined);
  return { child, port, loaded, exited, lines };
}

const servers: Array<ReturnType<typeof startServer>> = [];
const folders: string[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    if (server.child.exitCode === null && server.child.pid !== undefined) {
      try {
        process.kill(-server.child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await server.exited;
  }
});
afterAll(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

/** The value of an unlabelled counter in a Prometheus text exposition. */
async function counter(baseUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = text.split("\n").find((entry) => entry.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.split(" ")[1]);
}

/** Most chunks of 128 tokens in one batch on this profile's token budget (8192 and more). */
const ONE_BATCH = 64;

describe("document jobs across processes (sutra serve in child processes)", () => {
  it("resumes on restart from its last committed chunk: no chunk missing or twice, at most one batch embedded twice", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "sutra-jobs-kill-"));
    folders.push(dataDir);
    const documents = jobDocuments(40, 10_000, "kill");

    const first = startServer(dataDir);
    servers.push(first);
    const firstUrl = `http://127.0.0.1:${await first.port}`;
    await first.loaded;
    const firstClient = jobClient(firstUrl);
    const created = await firstClient.create({ documents, chunking: { chunk_size: 128, chunk_overlap: 8 } });
    const beforeKill: JobJson = await firstClient.waitFor(
      created.id,
      (job) => job.status !== "running" && job.status !== "queued" || job.documents_chunked === job.document_count && job.completed_chunks >= job.total_chunks * 0.45,
      600_000,
      25,
    );
    process.kill(-first.child.pid!, "SIGKILL");
    await first.exited;
    expect(beforeKill.status).toBe("running");
    expect(beforeKill.completed_chunks).toBeLessThan(beforeKill.total_chunks);

    const second = startServer(dataDir);
    servers.push(second);
    const secondUrl = `http://127.0.0.1:${await second.port}`;
    const secondClient = jobClient(secondUrl);
    const job = await secondClient.waitFor(created.id, undefined, 600_000, 100);
    expect(job).toMatchObject({ status: "completed", resumes: 1, total_chunks: beforeKill.total_chunks });
    expect(second.lines.some((line) => line.msg === "document jobs left running by the previous process will resume")).toBe(true);

    const results = await secondClient.results(created.id);
    checkJobResults(job, results, documents);

    // Work across both runs: every chunk once, plus at most the batch in flight at the kill.
    expect(job.dispatched_chunks).toBeGreaterThanOrEqual(job.total_chunks);
    expect(job.dispatched_chunks).toBeLessThanOrEqual(job.total_chunks + ONE_BATCH);
    // The second run embedded only chunks not committed before the kill.
    const embeddedBySecond = await counter(secondUrl, "sutra_job_chunks_embedded_total");
    expect(embeddedBySecond).toBeGreaterThan(0);
    expect(embeddedBySecond).toBeLessThanOrEqual(job.total_chunks - beforeKill.completed_chunks);
    expect(beforeKill.dispatched_chunks + embeddedBySecond).toBeLessThanOrEqual(job.total_chunks + ONE_BATCH);
    console.info(`kill -9 at ${beforeKill.completed_chunks}/${job.total_chunks} committed; handed to inference: ${job.dispatched_chunks} in all, ${embeddedBySecond} after the restart`);

    // What the first run committed and what the second added are the same embeddings unary calls give.
    let worst = 0;
    for (let start = 0; start < results.length; start += 256) {
      const slice = results.slice(start, start + 256);
      const answer = await secondClient.call("POST", "/v1/embeddings", { texts: slice.map((result) => result.text) });
      const unary = answer.json().embeddings as number[][];
      slice.forEach((result, index) => floats(result.embedding).forEach((value, dimension) => {
        worst = Math.max(worst, Math.abs(value - unary[index][dimension]));
      }));
    }
    expect(worst).toBeLessThanOrEqual(1e-6);

    process.kill(-second.child.pid!, "SIGTERM");
    await second.exited;
  }, 1_200_000);

  it("refuses to start on a corrupt job store, saying which file and what to do", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "sutra-jobs-corrupt-"));
    folders.push(dataDir);
    writeFileSync(join(dataDir, "jobs.sqlite3"), Buffer.alloc(16_384, 0x5a));
    const server = startServer(dataDir);
    servers.push(server);
    await server.exited;
    const fatal = server.lines.find((line) => line.level === 60);
    expect(fatal?.msg).toMatch(/^cannot start: the job store .*jobs\.sqlite3 is corrupt \(SQLITE_NOTADB\)/);
    expect(fatal?.msg).toMatch(/move the file aside/);
    expect(server.lines.some((line) => line.msg === "listening")).toBe(false);
  }, 120_000);
});
