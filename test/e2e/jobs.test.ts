import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { EmbedderService, JobStatus } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { checkJobResults, floats, jobClient, jobDocuments, type JobJson } from "../support/job-documents.js";
import { startRealService, type RunningService } from "../support/real-service.js";

const folders: string[] = [];
const dataDir = (): string => {
  const folder = mkdtempSync(join(tmpdir(), "sutra-jobs-"));
  folders.push(folder);
  return folder;
};
afterAll(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

describe("document jobs (real service)", () => {
  let running: RunningService;
  let jobs: ReturnType<typeof jobClient>;
  let client: ReturnType<typeof createClient<typeof EmbedderService>>;

  beforeAll(async () => {
    running = await startRealService({ dataDir: dataDir(), cacheSize: 0, jobMaxActive: 20, jobMaxDocuments: 500, jobMaxBytes: 3 * 1024 * 1024, maxBodyBytes: 4 * 1024 * 1024 });
    jobs = jobClient(running.baseUrl);
    client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
  }, 120_000);
  afterAll(() => running?.stop());

  it("embeds 200 documents (about 2 MB): every chunk once, offsets slice the text back, each embedding equals GenerateEmbeddings on the chunk text", async () => {
    const documents = jobDocuments(200, 10_000);
    const bytes = documents.reduce((sum, document) => sum + Buffer.byteLength(document.text), 0);
    expect(bytes).toBeGreaterThan(1_900_000);
    const created = await jobs.create({ documents, chunking: { chunk_size: 128, chunk_overlap: 16 } });
    expect(created.status).toBe("queued");
    expect(created.document_count).toBe(200);
    const job = await jobs.waitFor(created.id, undefined, 1_500_000, 500);
    expect(job).toMatchObject({ status: "completed", progress: 1, documents_chunked: 200, model_id: "universal-sentence-encoder-lite", dimensions: 512 });
    expect(job.dispatched_chunks).toBe(job.total_chunks);
    const results = await jobs.results(created.id);
    checkJobResults(job, results, documents);
    for (const result of results) {
      expect(result.tokens).toBeLessThanOrEqual(128);
      expect(result.metadata).toEqual(documents[result.document_index].metadata);
    }
    expect(job.prompt_tokens).toBe(results.reduce((sum, result) => sum + result.tokens, 0));

    // The same chunks through unary GenerateEmbeddings (REST), 256 at a time.
    let worst = 0;
    for (let start = 0; start < results.length; start += 256) {
      const slice = results.slice(start, start + 256);
      const answer = await jobs.call("POST", "/v1/embeddings", { texts: slice.map((result) => result.text) });
      expect(answer.status).toBe(200);
      const unary = answer.json().embeddings as number[][];
      slice.forEach((result, index) => {
        const vector = floats(result.embedding);
        expect(vector).toHaveLength(512);
        vector.forEach((value, dimension) => {
          worst = Math.max(worst, Math.abs(value - unary[index][dimension]));
        });
      });
    }
    expect(worst).toBeLessThanOrEqual(1e-6);

    // The server-streaming rpc streams the same results.
    let count = 0;
    for await (const message of client.getJobResults({ jobId: created.id })) {
      const line = results[count++];
      expect([message.documentId, message.chunkIndex, message.startChar, message.endChar, message.text]).toEqual([
        line.document_id, line.chunk_index, line.start_char, line.end_char, line.text,
      ]);
      expect(Array.from(message.embedding?.values ?? [])).toEqual(floats(line.embedding).map((value) => Math.fround(value)));
    }
    expect(count).toBe(results.length);
  }, 1_800_000);

  it("lists jobs newest first, filtered by status and paged by limit and offset, also on the seed's media route", async () => {
    // One job runs at a time: the five short ones wait behind this one, so two can be cancelled while queued.
    const blocker = (await jobs.create({ documents: jobDocuments(20, 10_000, "blocker") })).id;
    const ids: string[] = [];
    for (let index = 0; index < 5; index++) {
      ids.push((await jobs.create({ documents: [{ id: `list-${index}`, text: `List job number ${index}. It is short.` }] })).id);
    }
    for (const id of [ids[1], ids[3]]) expect((await jobs.get(id)).status).toBe("queued");
    for (const id of [ids[1], ids[3], blocker]) expect((await jobs.call("POST", `/v1/jobs/${id}/cancel`)).json().status).toBe("cancelled");
    for (const id of ids) await jobs.waitFor(id);
    const listed = (query: string) => jobs.call("GET", `/v1/jobs${query}`).then((answer) => {
      expect(answer.status).toBe(200);
      return answer.json() as { jobs: JobJson[]; pagination: { total: number; limit: number; offset: number; has_more: boolean } };
    });
    const cancelled = await listed("?status=cancelled");
    expect(cancelled.jobs.map((job) => job.id)).toEqual([ids[3], ids[1], blocker]);
    expect(cancelled.pagination).toEqual({ total: 3, limit: 50, offset: 0, has_more: false });
    const completed = (await listed("?status=completed&limit=1000")).jobs.map((job) => job.id);
    expect(completed.slice(0, 3)).toEqual([ids[4], ids[2], ids[0]]);
    const everything = await listed("?limit=1000");
    const page = await listed("?limit=2&offset=1");
    expect(page.jobs.map((job) => job.id)).toEqual(everything.jobs.slice(1, 3).map((job) => job.id));
    expect(page.jobs.map((job) => job.id)).toEqual([ids[3], ids[2]]);
    expect(page.pagination).toEqual({ total: everything.pagination.total, limit: 2, offset: 1, has_more: true });
    const seed = await jobs.call("GET", "/api/v1/media/embeddings/jobs?status=cancelled&limit=50&offset=0");
    expect((seed.json().jobs as JobJson[]).map((job) => job.id)).toEqual([ids[3], ids[1], blocker]);
    const single = await jobs.call("GET", `/api/v1/media/embeddings/jobs/${ids[0]}`);
    expect(single.json()).toMatchObject({ id: ids[0], status: "completed" });
    const overGrpc = await client.listJobs({ status: JobStatus.CANCELLED, limit: 1 });
    expect(overGrpc.jobs.map((job) => job.id)).toEqual([ids[3]]);
    expect(overGrpc.pagination).toMatchObject({ total: 3, hasMore: true });
    const wrongStatus = await jobs.call("GET", "/v1/jobs?status=processing");
    expect(wrongStatus.status).toBe(400);
  }, 300_000);

  it("stops a cancelled job within one batch: nothing is handed to inference after the cancel", async () => {
    const documents = jobDocuments(30, 10_000, "cancel");
    const created = await jobs.create({ documents, chunking: { chunk_size: 128 } });
    await jobs.waitFor(created.id, (job) => job.completed_chunks > 0 || job.status !== "queued" && job.status !== "running", 600_000, 20);
    const cancel = await jobs.call("POST", `/v1/jobs/${created.id}/cancel`);
    expect(cancel.status).toBe(200);
    const atCancel = cancel.json() as unknown as JobJson;
    expect(atCancel.status).toBe("cancelled");
    expect(atCancel.total_chunks).toBeGreaterThan(atCancel.completed_chunks + 128);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const later = await jobs.get(created.id);
    expect(later.status).toBe("cancelled");
    expect(later.dispatched_chunks).toBe(atCancel.dispatched_chunks);
    expect(later.completed_chunks).toBe(atCancel.completed_chunks);
    // A batch is at most 64 chunks of 128 tokens on this profile; what was in flight is not committed.
    expect(later.dispatched_chunks - later.completed_chunks).toBeLessThanOrEqual(64);
    expect(await jobs.results(created.id)).toHaveLength(later.completed_chunks);
    const again = await jobs.call("POST", `/v1/jobs/${created.id}/cancel`);
    expect(again.json()).toMatchObject({ status: "cancelled", finished_at: later.finished_at });
  }, 600_000);

  it("answers bad chunking parameters with INVALID_ARGUMENT and details, over REST and gRPC", async () => {
    const documents = [{ id: "a", text: "Some text to cut." }];
    const tooBig = await jobs.call("POST", "/v1/jobs", { documents, chunking: { chunk_size: 1000 } });
    expect(tooBig.status).toBe(400);
    expect(tooBig.json().error).toMatchObject({
      code: "INVALID_ARGUMENT",
      details: { field: "chunking.chunk_size", value: 1000, max: 128, min: 4, model_max_tokens: 128, prompt_tokens: 0 },
    });
    const tooSmall = await jobs.call("POST", "/v1/jobs", { documents, chunking: { chunk_size: 2 } });
    expect(tooSmall.json().error).toMatchObject({ code: "INVALID_ARGUMENT", details: { field: "chunking.chunk_size", value: 2, min: 4 } });
    const overlap = await jobs.call("POST", "/v1/jobs", { documents, chunking: { chunk_size: 64, chunk_overlap: 64 } });
    expect(overlap.status).toBe(400);
    expect(overlap.json().error).toMatchObject({ code: "INVALID_ARGUMENT", details: { field: "chunking.chunk_overlap", value: 64, max: 63, chunk_size: 64 } });
    const prompted = await jobs.call("POST", "/v1/jobs", { documents, instruction: "Find passages about sport", chunking: { chunk_size: 128 } });
    const promptDetails = (prompted.json().error as { details: { max: number; prompt_tokens: number } }).details;
    expect(prompted.status).toBe(400);
    expect(promptDetails.prompt_tokens).toBeGreaterThan(0);
    expect(promptDetails.max).toBe(128 - promptDetails.prompt_tokens);
    const negative = await jobs.call("POST", "/v1/jobs", { documents, chunking: { chunk_size: -5 } });
    expect(negative.status).toBe(400);

    const failure = await client.createJob({ documents: [{ id: "a", text: "Some text." }], chunking: { chunkSize: 4096, chunkOverlap: 0 } }).then(
      () => undefined,
      (error: unknown) => ConnectError.from(error),
    );
    expect(failure?.code).toBe(Code.InvalidArgument);
    const [info] = failure?.findDetails(ErrorInfoSchema) ?? [];
    expect(info).toMatchObject({ reason: "INVALID_ARGUMENT", metadata: { field: "chunking.chunk_size", value: "4096", max: "128" } });
  });

  it("checks documents and limits before queueing anything", async () => {
    const refused = async (body: unknown, status: number, code: string, details: Record<string, unknown> = {}) => {
      const answer = await jobs.call("POST", "/v1/jobs", body);
      expect(answer.status, answer.text).toBe(status);
      expect(answer.json().error).toMatchObject({ code, details });
    };
    await refused({ documents: [] }, 400, "EMPTY_INPUT", { field: "documents" });
    await refused({ documents: [{ id: "a", text: "fine" }, { id: "b", text: "  \n " }] }, 400, "EMPTY_INPUT", { index: 1 });
    await refused({ documents: [{ id: "a", text: "one" }, { id: "a", text: "two" }] }, 400, "INVALID_ARGUMENT", { field: "documents.id", index: 1 });
    await refused({ documents: Array.from({ length: 501 }, (_, index) => ({ text: `t${index}` })) }, 400, "TOO_MANY_INPUTS", { count: 501, limit: 500 });
    await refused({ documents: [{ text: "x".repeat(3 * 1024 * 1024 + 1) }] }, 413, "PAYLOAD_TOO_LARGE", { limit: 3 * 1024 * 1024 });
    await refused({ documents: [{ text: "fine" }], model: "no-such-model" }, 404, "UNKNOWN_MODEL");
    await refused({ documents: [{ text: "fine" }], dimensions: 100, dimensions_policy: "reject" }, 400, "INVALID_DIMENSIONS");
    await refused({ documents: [{ text: "fine" }], prompt_name: "no-such-prompt" }, 400, "INVALID_ARGUMENT", { field: "prompt_name" });
    for (const [method, path] of [["GET", "/v1/jobs/job_nope"], ["POST", "/v1/jobs/job_nope/cancel"], ["GET", "/v1/jobs/job_nope/results"]]) {
      const answer = await jobs.call(method, path);
      expect(answer.status).toBe(404);
      expect(answer.json().error).toMatchObject({ code: "JOB_NOT_FOUND", details: { job_id: "job_nope" } });
    }
    const missing = await client.getJob({ jobId: "job_nope" }).catch((error: unknown) => ConnectError.from(error));
    expect((missing as ConnectError).code).toBe(Code.NotFound);
  });

  it("keeps document ids, metadata and the requested encodings on each result", async () => {
    const created = await jobs.create({
      documents: [{ id: "meta", text: "Alpha beta gamma. Delta epsilon.", metadata: { page: 7, tags: ["x"] } }],
      embedding_types: ["float", "int8"],
      dimensions: 0,
    });
    const job = await jobs.waitFor(created.id);
    expect(job.status).toBe("completed");
    const [result] = await jobs.results(created.id);
    expect(result).toMatchObject({ document_id: "meta", metadata: { page: 7, tags: ["x"] }, text: "Alpha beta gamma. Delta epsilon." });
    const embedding = result.embedding as { values: number[]; int8: number[] };
    // `|| 0`: the JSON integers have no negative zero.
    expect(embedding.int8).toEqual(embedding.values.map((value) => Math.max(-127, Math.min(127, Math.round(value * 127))) || 0));
  });
});

describe("document jobs: owners, concurrency limit and retention (real service, API keys)", () => {
  const ALICE = "sk-alice-0123456789";
  const BOB = "sk-bob-0123456789";
  const ADMIN = "sk-admin-0123456789";
  let running: RunningService;

  beforeAll(async () => {
    running = await startRealService({
      dataDir: dataDir(), authMode: "api-key", apiKeys: `${ALICE},${BOB},${ADMIN}:admin`, jobMaxActive: 1, jobRetentionH: 2 / 3600,
    });
  }, 120_000);
  afterAll(() => running?.stop());

  it("shows a job to its owner and admins only, bounds active jobs per caller, and deletes finished jobs after the retention", async () => {
    const alice = jobClient(running.baseUrl, { "x-api-key": ALICE });
    const bob = jobClient(running.baseUrl, { "x-api-key": BOB });
    const admin = jobClient(running.baseUrl, { "x-api-key": ADMIN });
    const created = await alice.create({ documents: jobDocuments(3, 20_000, "alice") });
    const second = await alice.call("POST", "/v1/jobs", { documents: [{ text: "another" }] });
    expect(second.status).toBe(429);
    expect(second.headers.get("retry-after")).not.toBeNull();
    expect(second.json().error).toMatchObject({ code: "RATE_LIMITED", details: { limit: "jobs", active: 1, max: 1 } });
    expect((await bob.call("GET", `/v1/jobs/${created.id}`)).status).toBe(404);
    expect((await bob.call("POST", `/v1/jobs/${created.id}/cancel`)).status).toBe(404);
    expect((await bob.call("GET", "/v1/jobs")).json()).toMatchObject({ jobs: [], pagination: { total: 0 } });
    expect((await admin.call("GET", `/v1/jobs/${created.id}`)).status).toBe(200);
    expect((await alice.call("GET", "/v1/jobs")).json()).toMatchObject({ pagination: { total: 1 } });
    const bobJob = await bob.create({ documents: [{ text: "Bob has his own quota." }] });

    const done = await alice.waitFor(created.id);
    expect(done.status).toBe("completed");
    expect(Date.parse(done.expires_at ?? "") - Date.parse(done.finished_at ?? "")).toBe(2_000);
    await bob.waitFor(bobJob.id);
    // Retention 2 s, swept every second: the job and its results go.
    const deadline = Date.now() + 15_000;
    let gone = false;
    while (!gone && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      gone = (await alice.call("GET", `/v1/jobs/${created.id}`)).status === 404;
    }
    expect(gone).toBe(true);
    expect((await alice.call("GET", `/v1/jobs/${created.id}/results`)).status).toBe(404);
    expect((await admin.call("GET", "/v1/jobs")).json()).toMatchObject({ pagination: { total: 0 } });
  }, 300_000);
});
