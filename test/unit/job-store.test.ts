import { mkdtempSync, openSync, rmSync, writeFileSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { JOB_STORE_FILE, JobStoreError, openJobStore, type JobStore, type StoredJob } from "../../src/jobs/job-store.js";

const folders: string[] = [];
const stores: JobStore[] = [];
afterEach(() => {
  for (const store of stores.splice(0)) store.close();
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

function freshStore(options: { maxBytes?: number } = {}): { store: JobStore; dataDir: string } {
  const dataDir = mkdtempSync(join(tmpdir(), "sutra-job-store-"));
  folders.push(dataDir);
  const store = openJobStore({ dataDir, ...options });
  stores.push(store);
  return { store, dataDir };
}

function job(id: string, overrides: Partial<StoredJob> = {}): StoredJob {
  return {
    id,
    owner: "alice",
    status: "queued",
    options: { model: "", dimensions: 0, config: {}, normalize: true, embeddingTypes: ["float"], allowCrossModelFallback: false },
    requestedChunking: { chunkSize: 0, chunkOverlap: 0 },
    chunking: { chunkSize: 0, chunkOverlap: 0 },
    modelId: "",
    dimensions: 0,
    documentCount: 1,
    documentsChunked: 0,
    totalChunks: 0,
    completedChunks: 0,
    dispatchedChunks: 0,
    totalBytes: 10,
    promptTokens: 0,
    createdAt: 1_000,
    updatedAt: 1_000,
    resumes: 0,
    ...overrides,
  };
}

const span = (start: number, end: number) => ({ start, end, startChar: start, endChar: end, tokens: end - start });

/** A job running with one document of three chunks. */
function runningJob(store: JobStore, id = "j1"): void {
  store.insertJob(job(id), [{ id: "doc", text: "aaa bbb ccc", metadata: { page: 3 } }]);
  store.markRunning(id, { modelId: "m", dimensions: 2, chunking: { chunkSize: 8, chunkOverlap: 0 }, now: 2_000 });
  store.saveChunks(id, [{ documentIndex: 0, chunks: [span(0, 3), span(4, 7), span(8, 11)] }], 2_000);
}

/** Closes `store` and opens its folder again (as a restart does). */
function reopen(store: JobStore, dataDir: string): JobStore {
  store.close();
  stores.splice(stores.indexOf(store), 1);
  const reopened = openJobStore({ dataDir });
  stores.push(reopened);
  return reopened;
}

/** Runs `work` on the closed store's file through a better-sqlite3 connection of its own (what damage or an old server leaves). */
function editFile(dataDir: string, work: (db: Database.Database) => void): void {
  const db = new Database(join(dataDir, JOB_STORE_FILE));
  try {
    work(db);
  } finally {
    db.close();
  }
}

describe("job store", () => {
  it("stores each chunk's embedding once: a second commit of the same chunk changes nothing", () => {
    const { store } = freshStore();
    runningJob(store);
    expect(store.commitResults("j1", [{ documentIndex: 0, chunkIndex: 0, embedding: Float32Array.of(1, 2), tokens: 3 }], 3_000)).toBe(1);
    expect(store.commitResults("j1", [
      { documentIndex: 0, chunkIndex: 0, embedding: Float32Array.of(9, 9), tokens: 3 },
      { documentIndex: 0, chunkIndex: 1, embedding: Float32Array.of(3, 4), tokens: 3 },
    ], 3_000)).toBe(1);
    const stored = store.getJob("j1");
    expect(stored).toMatchObject({ status: "running", totalChunks: 3, documentsChunked: 1, completedChunks: 2, promptTokens: 6 });
    const results = store.results("j1", { offset: 0 }, 10);
    expect(results.map((result) => [result.chunkIndex, Array.from(result.embedding)])).toEqual([[0, [1, 2]], [1, [3, 4]]]);
    expect(store.pendingChunks("j1", { documentIndex: -1, chunkIndex: -1 }, 10).map((chunk) => chunk.chunkIndex)).toEqual([2]);
  });

  it("saves a document's chunks once and counts them once", () => {
    const { store } = freshStore();
    runningJob(store);
    store.saveChunks("j1", [{ documentIndex: 0, chunks: [span(0, 11)] }], 2_500);
    expect(store.getJob("j1")).toMatchObject({ documentsChunked: 1, totalChunks: 3 });
    expect(store.unchunkedDocuments("j1")).toEqual([]);
  });

  it("commits nothing for a job that is no longer running", () => {
    const { store } = freshStore();
    runningJob(store);
    expect(store.finishJob("j1", { status: "cancelled", now: 3_000, expiresAt: 9_000 })).toBe(true);
    expect(store.finishJob("j1", { status: "completed", now: 3_000, expiresAt: 9_000 })).toBe(false);
    expect(store.commitResults("j1", [{ documentIndex: 0, chunkIndex: 0, embedding: Float32Array.of(1, 2), tokens: 3 }], 3_000)).toBe(0);
    expect(store.getJob("j1")).toMatchObject({ status: "cancelled", completedChunks: 0, finishedAt: 3_000, expiresAt: 9_000 });
  });

  it("keeps everything across a reopen and puts jobs left running back in the queue", () => {
    const { store, dataDir } = freshStore();
    runningJob(store);
    store.addDispatched("j1", 2, 2_100);
    store.commitResults("j1", [{ documentIndex: 0, chunkIndex: 0, embedding: Float32Array.of(1, 2), tokens: 3 }], 2_200);
    store.close();
    stores.splice(stores.indexOf(store), 1);
    const reopened = openJobStore({ dataDir });
    stores.push(reopened);
    expect(reopened.requeueRunning(5_000)).toEqual(["j1"]);
    expect(reopened.getJob("j1")).toMatchObject({ status: "queued", resumes: 1, completedChunks: 1, dispatchedChunks: 2, totalChunks: 3 });
    expect(reopened.document("j1", 0)).toEqual({ index: 0, id: "doc", text: "aaa bbb ccc", metadata: { page: 3 }, chunkCount: 3 });
    expect(reopened.pendingChunks("j1", { documentIndex: 0, chunkIndex: 0 }, 1)).toEqual([{ documentIndex: 0, chunkIndex: 1, start: 4, end: 7, tokens: 3 }]);
  });

  it("lists jobs newest first, by owner and status, with the total and pages", () => {
    const { store } = freshStore();
    for (let index = 0; index < 7; index++) {
      store.insertJob(job(`j${index}`, { owner: index % 2 === 0 ? "alice" : "bob", createdAt: 1_000 + index }), [{ id: "d", text: "x" }]);
    }
    store.finishJob("j2", { status: "completed", now: 2_000, expiresAt: 5_000 });
    store.finishJob("j4", { status: "completed", now: 2_000, expiresAt: 5_000 });
    const alice = store.listJobs({ owner: "alice", limit: 2, offset: 1 });
    expect(alice.total).toBe(4);
    expect(alice.jobs.map((entry) => entry.id)).toEqual(["j4", "j2"]);
    expect(store.listJobs({ status: "completed", limit: 10, offset: 0 }).jobs.map((entry) => entry.id)).toEqual(["j4", "j2"]);
    expect(store.listJobs({ owner: "bob", status: "queued", limit: 10, offset: 0 })).toMatchObject({ total: 3 });
    expect(store.countActive("alice")).toBe(2);
    expect(store.nextQueued(new Set(["j0"]))?.id).toBe("j1");
  });

  it("deletes jobs whose retention ended, with their documents and chunks", () => {
    const { store } = freshStore();
    runningJob(store, "old");
    runningJob(store, "new");
    store.finishJob("old", { status: "completed", now: 3_000, expiresAt: 4_000 });
    store.finishJob("new", { status: "completed", now: 3_000, expiresAt: 8_000 });
    expect(store.deleteExpired(5_000)).toBe(1);
    expect(store.getJob("old")).toBeUndefined();
    expect(store.document("old", 0)).toBeUndefined();
    expect(store.pendingChunks("old", { documentIndex: -1, chunkIndex: -1 }, 10)).toEqual([]);
    expect(store.getJob("new")?.status).toBe("completed");
  });

  it("checks every result against its checksum: bytes changed on disk, or rows swapped, are not intact", () => {
    const { store, dataDir } = freshStore();
    runningJob(store);
    store.commitResults("j1", [0, 1, 2].map((chunkIndex) => ({ documentIndex: 0, chunkIndex, embedding: Float32Array.of(0.6, 0.8 + chunkIndex), tokens: 3 })), 3_000);
    expect(store.results("j1", { offset: 0 }, 10).map((result) => result.intact)).toEqual([true, true, true]);
    store.close();
    stores.splice(stores.indexOf(store), 1);
    editFile(dataDir, (db) => {
      const changed = Buffer.from(Float32Array.of(0.6, 12.5).buffer);
      db.prepare("UPDATE chunks SET embedding = ? WHERE chunk_index = 1").run(changed);
    });
    const damaged = openJobStore({ dataDir });
    stores.push(damaged);
    const results = damaged.results("j1", { offset: 0 }, 10);
    expect(results.map((result) => result.intact)).toEqual([true, false, true]);
    expect(damaged.results("j1", { after: { documentIndex: 0, chunkIndex: 0 } }, 10).map((result) => result.intact)).toEqual([false, true]);
    damaged.close();
    stores.splice(stores.indexOf(damaged), 1);
    // Rows 0 and 2 trade places, each with its own checksum: the checksum covers where a row belongs.
    editFile(dataDir, (db) => {
      const rows = db.prepare("SELECT chunk_index, embedding, checksum FROM chunks WHERE chunk_index IN (0, 2) ORDER BY chunk_index").all() as Array<{ embedding: Buffer; checksum: number }>;
      const swap = db.prepare("UPDATE chunks SET embedding = ?, checksum = ? WHERE chunk_index = ?");
      swap.run(rows[1].embedding, rows[1].checksum, 0);
      swap.run(rows[0].embedding, rows[0].checksum, 2);
    });
    const swapped = openJobStore({ dataDir });
    stores.push(swapped);
    expect(swapped.results("j1", { offset: 0 }, 10).map((result) => result.intact)).toEqual([false, false, false]);
  });

  it("migrates a store of schema 1: rows stored before checksums are checked for plausibility", () => {
    const { store, dataDir } = freshStore();
    runningJob(store);
    // Normalized two-dimension vectors, as the job (normalize: true, dimensions 2) stores them; then bad ones.
    store.commitResults("j1", [
      { documentIndex: 0, chunkIndex: 0, embedding: Float32Array.of(0.6, 0.8), tokens: 3 },
      { documentIndex: 0, chunkIndex: 1, embedding: Float32Array.of(3, 4), tokens: 3 },
      { documentIndex: 0, chunkIndex: 2, embedding: Float32Array.of(Number.NaN, 1), tokens: 3 },
    ], 3_000);
    store.close();
    stores.splice(stores.indexOf(store), 1);
    editFile(dataDir, (db) => {
      db.exec("ALTER TABLE chunks DROP COLUMN checksum");
      db.pragma("user_version = 1");
    });
    const migrated = openJobStore({ dataDir });
    stores.push(migrated);
    expect(migrated.results("j1", { offset: 0 }, 10).map((result) => [result.chunkIndex, result.intact])).toEqual([[0, true], [1, false], [2, false]]);
    const reopened = reopen(migrated, dataDir);
    expect(reopened.getJob("j1")).toMatchObject({ status: "running", completedChunks: 3 });
    reopened.close();
    stores.splice(stores.indexOf(reopened), 1);
    editFile(dataDir, (db) => {
      expect(db.pragma("user_version", { simple: true })).toBe(2);
      expect((db.prepare("SELECT count(*) AS count FROM chunks WHERE checksum IS NULL").get() as { count: number }).count).toBe(3);
    });
  });

  it("counts dispatched chunks only while the job runs, and takes back a batch the pipeline refused", () => {
    const { store } = freshStore();
    runningJob(store);
    expect(store.addDispatched("j1", 3, 2_100)).toBe(true);
    store.removeDispatched("j1", 3, 2_200);
    expect(store.addDispatched("j1", 2, 2_300)).toBe(true);
    expect(store.getJob("j1")?.dispatchedChunks).toBe(2);
    store.finishJob("j1", { status: "cancelled", now: 2_400, expiresAt: 9_000 });
    expect(store.addDispatched("j1", 2, 2_500)).toBe(false);
    expect(store.getJob("j1")?.dispatchedChunks).toBe(2);
  });

  it("refuses a damaged file with a corrupt-store error naming the file", () => {
    const dataDir = mkdtempSync(join(tmpdir(), "sutra-job-store-"));
    folders.push(dataDir);
    writeFileSync(join(dataDir, JOB_STORE_FILE), Buffer.alloc(8192, 0x5a));
    expect(() => openJobStore({ dataDir })).toThrow(JobStoreError);
    try {
      openJobStore({ dataDir });
    } catch (error) {
      expect(error).toMatchObject({ kind: "corrupt" });
      expect((error as Error).message).toContain(JOB_STORE_FILE);
      expect((error as Error).message).toMatch(/move the file aside/);
    }
  });

  it("reports damage inside a store that opened", () => {
    const { store, dataDir } = freshStore();
    runningJob(store);
    const padding = "y".repeat(200_000);
    store.insertJob(job("big"), [{ id: "d", text: padding }]);
    store.close();
    stores.splice(stores.indexOf(store), 1);
    // Overwrite the pages after the schema with garbage; the header and the job table's root stay intact.
    const descriptor = openSync(join(dataDir, JOB_STORE_FILE), "r+");
    writeSync(descriptor, Buffer.alloc(150_000, 0xa5), 0, 150_000, 40_960);
    closeSync(descriptor);
    let failure: unknown;
    try {
      const damaged = openJobStore({ dataDir });
      stores.push(damaged);
      damaged.document("big", 0);
      damaged.results("j1", { offset: 0 }, 10);
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(JobStoreError);
    expect(failure).toMatchObject({ kind: "corrupt" });
  });

  it("belongs to one process at a time: a second opener is told the store is in use", () => {
    const { store, dataDir } = freshStore();
    runningJob(store);
    let failure: unknown;
    try {
      stores.push(openJobStore({ dataDir }));
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(JobStoreError);
    expect(failure).toMatchObject({ kind: "locked" });
    expect((failure as Error).message).toMatch(/in use by another process.*SUTRA_DATA_DIR/);
    store.close();
    stores.splice(stores.indexOf(store), 1);
    const next = openJobStore({ dataDir });
    stores.push(next);
    expect(next.getJob("j1")?.status).toBe("running");
  });

  it("says the store is full when a write does not fit", () => {
    const { store } = freshStore({ maxBytes: 64 * 1024 });
    let failure: unknown;
    try {
      store.insertJob(job("huge"), [{ id: "d", text: "z".repeat(256 * 1024) }]);
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(JobStoreError);
    expect(failure).toMatchObject({ kind: "full" });
    expect((failure as Error).message).toMatch(/full/);
    expect(store.getJob("huge")).toBeUndefined();
  });
});
