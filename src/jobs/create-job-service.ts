import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setImmediate as yieldToEventLoop, setTimeout as sleep } from "node:timers/promises";
import { validateEmbedRequest } from "../admission/validate-request.js";
import { EmbedderError } from "../domain/errors.js";
import { FINISHED_JOB_STATUSES } from "../domain/jobs.js";
import type { CreateJobInput, JobPage, JobResult, JobService, JobSnapshot, JobStatus } from "../domain/jobs.js";
import type { EmbedRequest, EmbedResult, Embedder, Principal } from "../domain/types.js";
import type { ModelRegistry } from "../models/registry.js";
import type { Logger } from "../observability/logger.js";
import { encodeEmbedding } from "../postprocess/encode-embedding.js";
import { resolveDimensions } from "../postprocess/resolve-dimensions.js";
import { ChunkTooSmallError, chunkDocument } from "./chunk-document.js";
import type { ChunkSpan } from "./chunk-document.js";
import { JobStoreError } from "./job-store.js";
import type { JobStore, StoredDocument, StoredJob } from "./job-store.js";
import { planChunking } from "./plan-chunking.js";

/** Limits on jobs, per job and per principal (docs/JOBS.md, "Configuration"). */
export interface JobLimits {
  /** Most documents in one job. */
  maxDocuments: number;
  /** Most bytes of document text and metadata (UTF-8) in one job. */
  maxBytes: number;
  /** Most queued and running jobs of one principal. */
  maxActivePerPrincipal: number;
  /** How long a finished job and its results are kept, in milliseconds. */
  retentionMs: number;
}

/** What the job service needs. */
export interface JobServiceDeps {
  store: JobStore;
  /** The pipeline itself (not the admitted one: jobs have their own limits); jobs call it at `background` priority. */
  embedder: Embedder;
  registry: Pick<ModelRegistry, "resolve">;
  logger: Logger;
  limits: JobLimits;
  /** The batcher's limits: a job hands inference one batch's worth of chunks at a time. */
  batching: { maxBatchSize: number; tokenBudget: number };
  /** Jobs run at once (default 1); others wait queued, oldest first. */
  concurrency?: number;
  /** How often expired jobs are deleted, in ms (default: a tenth of the retention, between 1 s and 10 min). */
  sweepIntervalMs?: number;
  /** Told of chunks handed to inference (once their batch settled) and of jobs reaching a final status (metrics). */
  onChunksEmbedded?: (count: number) => void;
  onJobFinished?: (status: JobStatus) => void;
  now?: () => number;
}

/** The job service with its lifecycle. */
export interface JobServiceHandle extends JobService {
  /** Requeues jobs a previous process left running, deletes expired jobs, and starts running queued jobs. */
  start(): void;
  /**
   * Stops running jobs (a batch in flight is dropped) and waits for them to
   * let go; they stay `running` in the store, so the next start resumes them
   * from their last committed chunk.
   */
  stop(): Promise<void>;
  /** Closes the store (after stop). */
  close(): void;
}

/** Longest stretch the chunker runs before yielding to the event loop, in ms. */
const CHUNKING_SLICE_MS = 4;
/** Chunks of several documents saved in one transaction while a job is cut. */
const SAVE_CHUNKS = 512;
/** Results read from the store at a time while streaming. */
const RESULTS_PAGE = 256;
/** Failures worth retrying a group for, and how often. */
const TRANSIENT = new Set(["OVERLOADED", "WORKER_FAILED", "MODEL_NOT_READY", "UPSTREAM_UNAVAILABLE"]);
const RETRIES = 5;
const RETRY_BASE_MS = 500;
/** Failures by which the pipeline turns a batch away before any of it runs: the batch was not handed to inference. */
const REFUSED = new Set(["OVERLOADED", "MODEL_NOT_READY", "SHUTTING_DOWN"]);
/** What a job that failed on the store tells its client (the log has the file and the SQLite error). */
const STORE_FAILURES: { readonly [K in JobStoreError["kind"]]: { code: string; message: string } } = {
  full: { code: "STORE_FULL", message: "the job store is full; free disk space or wait for finished jobs to expire, then create the job again" },
  corrupt: { code: "STORE_CORRUPT", message: "the job store is corrupt; the operator must restore it or move it aside" },
  locked: { code: "STORE_IO", message: "the job store is in use by another process" },
  io: { code: "STORE_IO", message: "the job store cannot be read or written" },
};

/**
 * Creates the document-job service (docs/JOBS.md). A job is validated and
 * stored at creation (documents, options, chunking), then run in the
 * background: its documents are cut into chunks (chunkDocument, sized by
 * planChunking on the target model's tokenizer) and the chunks are stored;
 * then, one batch of chunks at a time in document order, the count of chunks
 * handed to inference is committed (taken back when the pipeline refuses the
 * batch before running it), the chunks are embedded through the one
 * pipeline at `background` priority (so they yield to online requests), and
 * their embeddings and the job's counts are committed in one transaction. A
 * process killed at any point resumes a job from its last committed chunk;
 * a chunk's embedding is stored at most once, so results hold each chunk
 * exactly once and the work lost to a kill is at most the batch in flight.
 * Results are served only as stored: a row damaged on disk ends the results
 * with DATA_DAMAGED at that row, after the good rows before it.
 */
export function createJobService(deps: JobServiceDeps): JobServiceHandle {
  const { store, logger, limits } = deps;
  const now = deps.now ?? Date.now;
  const concurrency = Math.max(1, deps.concurrency ?? 1);
  const running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  let started = false;
  let stopped = false;
  let sweeper: NodeJS.Timeout | undefined;

  const ownerOf = (principal: Principal | undefined): string => principal?.id ?? "anonymous";
  const seesAll = (principal: Principal | undefined): boolean => principal === undefined || principal.role === "admin";

  /** The job if the caller may see it; JOB_NOT_FOUND otherwise (unknown, expired, or someone else's). */
  const visibleJob = (jobId: string, principal: Principal | undefined): StoredJob => {
    const job = jobId === "" ? undefined : fromStore(() => store.getJob(jobId));
    if (job === undefined || (!seesAll(principal) && job.owner !== ownerOf(principal))) {
      throw new EmbedderError("JOB_NOT_FOUND", `no job with id "${jobId}"`, { details: { job_id: jobId } });
    }
    return job;
  };

  const kick = (): void => {
    if (!started || stopped) return;
    while (running.size < concurrency) {
      const job = fromStore(() => store.nextQueued(new Set(running.keys())));
      if (job === undefined) return;
      const controller = new AbortController();
      const done = runJob(job, controller.signal)
        .catch((error: unknown) => logger.error({ err: error, job: job.id }, "document job stopped by an unexpected error"))
        .finally(() => {
          running.delete(job.id);
          kick();
        });
      running.set(job.id, { controller, done });
    }
  };

  /** Moves a job to a final status (once), with its retention. */
  const finish = (jobId: string, status: JobStatus, error?: { code: string; message: string }): void => {
    const at = now();
    try {
      if (store.finishJob(jobId, { status, now: at, expiresAt: at + limits.retentionMs, error })) deps.onJobFinished?.(status);
    } catch (reason) {
      logger.error({ err: reason, job: jobId, status }, "could not record a document job's final status; it will be resumed at the next start");
    }
  };

  const runJob = async (job: StoredJob, signal: AbortSignal): Promise<void> => {
    try {
      const choice = await withRetry(() => deps.registry.resolve(job.options.model), signal, job.id);
      try {
        const plan = planChunking(choice.model, job.options, job.requestedChunking);
        const dimensions = resolveDimensions(job.options.dimensions, choice.model.manifest).size;
        store.markRunning(job.id, { modelId: choice.model.manifest.id, dimensions, chunking: plan.chunking, now: now() });
        if (store.getJob(job.id)?.status !== "running") return;
        if (job.status === "running" || job.resumes > 0) logger.info({ job: job.id, resumes: job.resumes }, "document job resumed");
        else logger.info({ job: job.id, documents: job.documentCount }, "document job started");
        if (!(await chunkDocuments(job.id, plan, signal))) return;
        const groupSize = Math.max(1, Math.min(deps.batching.maxBatchSize, Math.floor(deps.batching.tokenBudget / plan.maxEmbeddedTokens)));
        if (!(await embedChunks(job, groupSize, signal))) return;
        finish(job.id, "completed");
        logger.info({ job: job.id }, "document job completed");
      } finally {
        choice.release?.();
      }
    } catch (reason) {
      if (signal.aborted) return;
      const error = reason instanceof ChunkTooSmallError
        ? new EmbedderError("INVALID_ARGUMENT", reason.message, { details: { field: "chunking.chunk_size", value: reason.chunkSize } })
        : reason;
      if (error instanceof EmbedderError && error.reason === "SHUTTING_DOWN") return;
      const failure = error instanceof JobStoreError ? STORE_FAILURES[error.kind] : { code: EmbedderError.from(error).reason, message: EmbedderError.from(error).message };
      logger.error({ err: reason, job: job.id, code: failure.code }, "document job failed");
      finish(job.id, "failed", failure);
    }
  };

  /**
   * Cuts the documents not cut yet and stores their chunks, several documents
   * per transaction (up to SAVE_CHUNKS chunks), yielding to the event loop
   * every CHUNKING_SLICE_MS; false when stopped on the way.
   */
  const chunkDocuments = async (jobId: string, plan: ReturnType<typeof planChunking>, signal: AbortSignal): Promise<boolean> => {
    let unsaved: Array<{ documentIndex: number; chunks: ChunkSpan[] }> = [];
    let unsavedChunks = 0;
    const save = () => {
      if (unsaved.length > 0) store.saveChunks(jobId, unsaved, now());
      unsaved = [];
      unsavedChunks = 0;
    };
    let sliceStarted = performance.now();
    for (const documentIndex of store.unchunkedDocuments(jobId)) {
      const document = store.document(jobId, documentIndex);
      if (document === undefined) return false;
      const chunks: ChunkSpan[] = [];
      for (const chunk of chunkDocument(document.text, plan.chunking, plan.measure)) {
        chunks.push(chunk);
        if (performance.now() - sliceStarted > CHUNKING_SLICE_MS) {
          await yieldToEventLoop();
          if (signal.aborted) return false;
          sliceStarted = performance.now();
        }
      }
      unsaved.push({ documentIndex, chunks });
      unsavedChunks += chunks.length;
      if (unsavedChunks >= SAVE_CHUNKS) save();
    }
    if (signal.aborted) return false;
    save();
    return true;
  };

  /** Embeds the chunks without an embedding, one group at a time; false when stopped on the way. */
  const embedChunks = async (job: StoredJob, groupSize: number, signal: AbortSignal): Promise<boolean> => {
    let cursor = { documentIndex: -1, chunkIndex: -1 };
    let document: StoredDocument | undefined;
    const textOf = (documentIndex: number): string => {
      if (document?.index !== documentIndex) document = store.document(job.id, documentIndex);
      if (document === undefined) throw new EmbedderError("JOB_NOT_FOUND", `job ${job.id} was deleted while it ran`);
      return document.text;
    };
    for (let group = 0; ; group++) {
      if (signal.aborted) return false;
      const pending = store.pendingChunks(job.id, cursor, groupSize);
      if (pending.length === 0) return true;
      const texts = pending.map((chunk) => textOf(chunk.documentIndex).slice(chunk.start, chunk.end));
      const request: EmbedRequest = {
        ...job.options,
        requestId: `job-${job.id}-${job.resumes}-${group}`,
        texts,
        truncate: "end",
        embeddingTypes: ["float"],
        priority: "background",
      };
      const result = await withRetry(() => handOver(job.id, request, signal), signal, job.id);
      if (result === undefined) return false;
      const committed = store.commitResults(job.id, pending.map((chunk, index) => ({
        documentIndex: chunk.documentIndex,
        chunkIndex: chunk.chunkIndex,
        embedding: result.embeddings[index].float ?? new Float32Array(0),
        tokens: chunk.tokens,
      })), now());
      if (committed === 0 && fromStore(() => store.getJob(job.id))?.status !== "running") return false;
      const last = pending[pending.length - 1];
      cursor = { documentIndex: last.documentIndex, chunkIndex: last.chunkIndex };
    }
  };

  /**
   * Hands one batch to inference. Its size is added to `dispatched_chunks`
   * first (committed, so a kill cannot lose it), only while the job runs and is
   * not stopped (else nothing is counted or sent and the answer is undefined),
   * and taken back when the pipeline turned the batch away before running any
   * of it (REFUSED): the count holds only batches inference received.
   */
  const handOver = async (jobId: string, request: EmbedRequest, signal: AbortSignal): Promise<EmbedResult | undefined> => {
    const count = request.texts.length;
    if (signal.aborted || !store.addDispatched(jobId, count, now())) return undefined;
    try {
      const result = await deps.embedder.embed(request, signal);
      deps.onChunksEmbedded?.(count);
      return result;
    } catch (reason) {
      if (REFUSED.has(EmbedderError.from(reason).reason)) store.removeDispatched(jobId, count, now());
      else deps.onChunksEmbedded?.(count);
      throw reason;
    }
  };

  /** Runs `work` (loading the model, embedding a batch), retrying transient failures with backoff. */
  const withRetry = async <T>(work: () => Promise<T>, signal: AbortSignal, jobId: string): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await work();
      } catch (reason) {
        const error = EmbedderError.from(reason);
        if (signal.aborted || !TRANSIENT.has(error.reason) || attempt >= RETRIES) throw reason;
        const waitMs = Math.max(error.retryAfterMs ?? 0, RETRY_BASE_MS * 2 ** attempt);
        logger.warn({ job: jobId, reason: error.reason, waitMs }, "document job step failed; retrying");
        await sleep(waitMs, undefined, { signal }).catch(() => undefined);
      }
    }
  };

  const snapshot = (job: StoredJob): JobSnapshot => {
    const chunked = job.documentsChunked === job.documentCount;
    return {
      id: job.id,
      status: job.status,
      progress: job.status === "completed" ? 1 : chunked && job.totalChunks > 0 ? job.completedChunks / job.totalChunks : 0,
      documentCount: job.documentCount,
      documentsChunked: job.documentsChunked,
      totalChunks: job.totalChunks,
      completedChunks: job.completedChunks,
      dispatchedChunks: job.dispatchedChunks,
      totalBytes: job.totalBytes,
      promptTokens: job.promptTokens,
      model: job.options.model,
      modelId: job.modelId,
      dimensions: job.dimensions,
      chunking: job.chunking.chunkSize > 0 ? job.chunking : job.requestedChunking,
      createdAt: job.createdAt,
      ...(job.startedAt === undefined ? {} : { startedAt: job.startedAt }),
      updatedAt: job.updatedAt,
      ...(job.finishedAt === undefined ? {} : { finishedAt: job.finishedAt }),
      ...(job.expiresAt === undefined ? {} : { expiresAt: job.expiresAt }),
      ...(job.error === undefined ? {} : { error: job.error }),
      resumes: job.resumes,
    };
  };

  const sweep = (): void => {
    try {
      const deleted = store.deleteExpired(now());
      if (deleted > 0) logger.info({ deleted }, "expired document jobs deleted");
    } catch (error) {
      logger.error({ err: error }, "could not delete expired document jobs");
    }
  };

  const create = async (input: CreateJobInput): Promise<JobSnapshot> => {
    if (stopped) throw new EmbedderError("SHUTTING_DOWN", "the server is shutting down", { retryAfterMs: 1000 });
    const { documents, options } = input;
    if (documents.length === 0) {
      throw new EmbedderError("EMPTY_INPUT", "a job needs at least one document", { details: { field: "documents", count: 0 } });
    }
    if (documents.length > limits.maxDocuments) {
      throw new EmbedderError("TOO_MANY_INPUTS", `the job has ${documents.length} documents, more than the limit of ${limits.maxDocuments}`, {
        details: { field: "documents", count: documents.length, limit: limits.maxDocuments },
      });
    }
    const ids = new Map<string, number>();
    let totalBytes = 0;
    const stored = documents.map((document, index) => {
      if (document.text.trim().length === 0) {
        throw new EmbedderError("EMPTY_INPUT", `documents[${index}] has no text`, { details: { field: "documents.text", index } });
      }
      const id = document.id === "" ? `doc-${index}` : document.id;
      const earlier = ids.get(id);
      if (earlier !== undefined) {
        throw new EmbedderError("INVALID_ARGUMENT", `documents[${index}] repeats the id "${id}" of documents[${earlier}]`, {
          details: { field: "documents.id", index, id },
        });
      }
      ids.set(id, index);
      const metadata = document.metadata === undefined || Object.keys(document.metadata).length === 0 ? undefined : document.metadata;
      totalBytes += Buffer.byteLength(document.text) + Buffer.byteLength(id) + (metadata === undefined ? 0 : Buffer.byteLength(JSON.stringify(metadata)));
      return { id, text: document.text, ...(metadata === undefined ? {} : { metadata }) };
    });
    if (totalBytes > limits.maxBytes) {
      throw new EmbedderError("PAYLOAD_TOO_LARGE", `the job's documents take ${totalBytes} bytes, more than the limit of ${limits.maxBytes}`, {
        details: { field: "documents", bytes: totalBytes, limit: limits.maxBytes },
      });
    }
    validateEmbedRequest({ ...options, requestId: input.requestId, texts: ["-"], truncate: "end" }, { maxInputs: 1 });
    const owner = ownerOf(input.principal);
    const active = fromStore(() => store.countActive(owner));
    if (active >= limits.maxActivePerPrincipal) {
      throw new EmbedderError("RATE_LIMITED", `${active} of your jobs are queued or running, the most allowed at once; wait for one to finish`, {
        retryAfterMs: 10_000,
        details: { limit: "jobs", active, max: limits.maxActivePerPrincipal },
      });
    }
    // The model must exist and take these options; the chunking must fit it.
    const choice = await deps.registry.resolve(options.model);
    try {
      planChunking(choice.model, options, input.chunking);
      await deps.embedder.embed({ ...options, requestId: input.requestId, texts: [], truncate: "end", priority: "background" });
    } finally {
      choice.release?.();
    }
    const at = now();
    const job: StoredJob = {
      id: `job_${randomUUID()}`,
      owner,
      status: "queued",
      options,
      requestedChunking: input.chunking,
      chunking: { chunkSize: 0, chunkOverlap: 0 },
      modelId: "",
      dimensions: 0,
      documentCount: documents.length,
      documentsChunked: 0,
      totalChunks: 0,
      completedChunks: 0,
      dispatchedChunks: 0,
      totalBytes,
      promptTokens: 0,
      createdAt: at,
      updatedAt: at,
      resumes: 0,
    };
    fromStore(() => store.insertJob(job, stored));
    logger.info({ job: job.id, owner, documents: documents.length, bytes: totalBytes, requestId: input.requestId }, "document job queued");
    queueMicrotask(kick);
    return snapshot(job);
  };

  return {
    create,
    get: (jobId, principal) => snapshot(visibleJob(jobId, principal)),
    list({ status, limit, offset }, principal): JobPage {
      const owner = seesAll(principal) ? undefined : ownerOf(principal);
      const { jobs, total } = fromStore(() => store.listJobs({ owner, status, limit, offset }));
      return { jobs: jobs.map(snapshot), total, limit, offset, hasMore: offset + jobs.length < total };
    },
    cancel(jobId, principal) {
      const job = visibleJob(jobId, principal);
      if (!FINISHED_JOB_STATUSES.includes(job.status)) {
        finish(jobId, "cancelled");
        running.get(jobId)?.controller.abort();
        logger.info({ job: jobId }, "document job cancelled");
      }
      return snapshot(visibleJob(jobId, principal));
    },
    async *results(jobId, { offset }, principal): AsyncGenerator<JobResult> {
      const job = visibleJob(jobId, principal);
      let document: StoredDocument | undefined;
      let page = fromStore(() => store.results(jobId, { offset }, RESULTS_PAGE));
      while (page.length > 0) {
        for (const row of page) {
          if (document?.index !== row.documentIndex) document = fromStore(() => store.document(jobId, row.documentIndex));
          if (!row.intact) {
            const documentId = document?.id ?? "";
            logger.error({ job: jobId, documentIndex: row.documentIndex, chunkIndex: row.chunkIndex }, "a stored job result fails its checksum: the job store was damaged on disk; restore it from a backup or run the job again");
            throw new EmbedderError("DATA_DAMAGED", `the stored result of chunk ${row.chunkIndex} of document "${documentId}" is damaged; create the job again`, {
              details: { job_id: jobId, document_id: documentId, chunk_index: row.chunkIndex },
            });
          }
          if (document === undefined) return;
          yield {
            documentId: document.id,
            documentIndex: row.documentIndex,
            chunkIndex: row.chunkIndex,
            startChar: row.startChar,
            endChar: row.endChar,
            text: document.text.slice(row.start, row.end),
            tokens: row.tokens,
            embedding: encodeEmbedding(row.embedding, job.options.embeddingTypes),
            ...(document.metadata === undefined ? {} : { metadata: document.metadata }),
          };
        }
        const last = page[page.length - 1];
        page = fromStore(() => store.results(jobId, { after: { documentIndex: last.documentIndex, chunkIndex: last.chunkIndex } }, RESULTS_PAGE));
      }
    },
    start() {
      if (started) return;
      started = true;
      const requeued = fromStore(() => store.requeueRunning(now()));
      if (requeued.length > 0) logger.info({ jobs: requeued }, "document jobs left running by the previous process will resume");
      sweep();
      const interval = deps.sweepIntervalMs ?? Math.min(600_000, Math.max(1_000, limits.retentionMs / 10));
      sweeper = setInterval(sweep, interval).unref();
      kick();
    },
    async stop() {
      stopped = true;
      if (sweeper !== undefined) clearInterval(sweeper);
      const runs = [...running.values()];
      for (const run of runs) run.controller.abort();
      await Promise.all(runs.map((run) => run.done));
    },
    close() {
      store.close();
    },
  };
}

/**
 * Runs a store call for an rpc, turning store failures into errors a client
 * can act on: a full store is OVERLOADED (RESOURCE_EXHAUSTED, retry later), a
 * corrupt or unreadable one INTERNAL with a message that names no path (the
 * log has the details).
 */
function fromStore<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (!(error instanceof JobStoreError)) throw error;
    if (error.kind === "full") {
      throw new EmbedderError("OVERLOADED", "the job store is full; retry after finished jobs expire or the operator frees space", {
        retryAfterMs: 60_000, details: { store: "full" }, cause: error,
      });
    }
    throw new EmbedderError("INTERNAL", error.kind === "corrupt" ? "the job store is corrupt; the operator must restore or move it aside" : "the job store cannot be read or written", {
      details: { store: error.kind }, cause: error,
    });
  }
}
