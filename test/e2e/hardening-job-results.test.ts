import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { JOB_STORE_FILE } from "../../src/jobs/job-store.js";
import { floats, jobClient, jobDocuments, type JobResultLine } from "../support/job-documents.js";
import { metricKey, parseMetrics } from "../support/prometheus-text.js";
import { startRealService, type RunningService } from "../support/real-service.js";

const folders: string[] = [];
const dataDir = (): string => {
  const folder = mkdtempSync(join(tmpdir(), "sutra-job-results-"));
  folders.push(folder);
  return folder;
};
const services: RunningService[] = [];
const start = async (overrides: Parameters<typeof startRealService>[0]) => {
  const running = await startRealService({ cacheSize: 0, ...overrides });
  services.push(running);
  return running;
};
afterAll(async () => {
  for (const running of services) await running.stop().catch(() => undefined);
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

/** The stored embedding bytes of one chunk, read from the closed store through a connection of its own. */
function storedEmbedding(folder: string, jobId: string, documentIndex: number, chunkIndex: number): Buffer {
  const db = new Database(join(folder, JOB_STORE_FILE), { readonly: true });
  try {
    const row = db.prepare("SELECT embedding FROM chunks WHERE job_id = ? AND doc_index = ? AND chunk_index = ?").get(jobId, documentIndex, chunkIndex) as { embedding: Buffer };
    return row.embedding;
  } finally {
    db.close();
  }
}

describe("job results are checked against their checksums (real service)", () => {
  it("a result row whose bytes were overwritten in the SQLite file ends GetJobResults with DATA_DAMAGED after the good rows (REST NDJSON, gRPC), never a wrong vector", async () => {
    const folder = dataDir();
    const first = await start({ dataDir: folder });
    const jobs = jobClient(first.baseUrl);
    const documents = jobDocuments(2, 1_500);
    const created = await jobs.create({ documents, chunking: { chunk_size: 48, chunk_overlap: 0 } });
    const job = await jobs.waitFor(created.id, undefined, 300_000, 200);
    expect(job.status).toBe("completed");
    const good = await jobs.results(created.id);
    expect(good.length).toBeGreaterThanOrEqual(6);
    await first.stop();

    // Overwrite 8 bytes in the middle of one row's embedding, in the file itself (what a bad disk does).
    const damagedAt = Math.floor(good.length / 2);
    const target = good[damagedAt];
    const file = join(folder, JOB_STORE_FILE);
    expect(existsSync(`${file}-wal`)).toBe(false);
    const blob = storedEmbedding(folder, created.id, target.document_index, target.chunk_index);
    const bytes = readFileSync(file);
    const at = bytes.indexOf(blob);
    expect(at).toBeGreaterThan(0);
    expect(bytes.indexOf(blob, at + 1)).toBe(-1);
    bytes.fill(0x7f, at + 400, at + 408);
    writeFileSync(file, bytes);

    const second = await start({ dataDir: folder });
    const again = jobClient(second.baseUrl);
    expect((await again.get(created.id)).status).toBe("completed");

    // REST NDJSON: 200, the good rows as before, then the error record at the damaged row.
    const answer = await again.call("GET", `/v1/jobs/${created.id}/results`);
    expect(answer.status).toBe(200);
    const lines = answer.text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as JobResultLine & { error?: { code: string; details: Record<string, unknown> } });
    expect(lines).toHaveLength(damagedAt + 1);
    lines.slice(0, damagedAt).forEach((line, index) => {
      expect([line.document_index, line.chunk_index]).toEqual([good[index].document_index, good[index].chunk_index]);
      expect(floats(line.embedding)).toEqual(floats(good[index].embedding));
    });
    const details = { job_id: created.id, document_id: target.document_id, chunk_index: target.chunk_index };
    expect(lines[damagedAt].error).toMatchObject({ code: "DATA_DAMAGED", details });

    // From the damaged row on, nothing good comes first: an ordinary 500 answer.
    const from = await again.call("GET", `/v1/jobs/${created.id}/results?offset=${damagedAt}`);
    expect(from.status).toBe(500);
    expect(from.json()).toMatchObject({ error: { code: "DATA_DAMAGED", details } });

    // The server-streaming rpc: the good rows, then DATA_LOSS with the DATA_DAMAGED reason.
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: second.baseUrl }));
    let streamed = 0;
    const failure = await (async () => {
      for await (const message of client.getJobResults({ jobId: created.id })) {
        expect(Array.from(message.embedding?.values ?? [])).toEqual(floats(good[streamed].embedding).map((value) => Math.fround(value)));
        streamed++;
      }
    })().then(() => undefined, (error: unknown) => ConnectError.from(error));
    expect(streamed).toBe(damagedAt);
    expect(failure?.code).toBe(Code.DataLoss);
    expect(failure?.findDetails(ErrorInfoSchema)[0]).toMatchObject({ reason: "DATA_DAMAGED", metadata: { job_id: created.id, chunk_index: String(target.chunk_index) } });
  }, 600_000);

  it("a queue bound smaller than a job's batches never fails the job: its batches are capped at the bound, each chunk dispatched once", async () => {
    // A bound of 2 texts: job batches (up to 64 chunks otherwise) go to inference 2 chunks at a time.
    const running = await start({ dataDir: dataDir(), maxQueue: 2 });
    const jobs = jobClient(running.baseUrl);
    const created = await jobs.create({ documents: jobDocuments(1, 3_000), chunking: { chunk_size: 48, chunk_overlap: 0 } });
    const job = await jobs.waitFor(created.id, undefined, 120_000, 200);
    expect(job.status).toBe("completed");
    expect(job.total_chunks).toBeGreaterThan(2);
    expect(job.dispatched_chunks).toBe(job.total_chunks);
    expect(job.completed_chunks).toBe(job.total_chunks);
    const metrics = parseMetrics(await (await fetch(`${running.baseUrl}/metrics`)).text());
    expect(metrics.get(metricKey("sutra_job_chunks_embedded_total"))).toBe(job.total_chunks);
    expect(metrics.get(metricKey("sutra_batch_size_count"))).toBeGreaterThanOrEqual(Math.ceil(job.total_chunks / 2));
  }, 180_000);
});
