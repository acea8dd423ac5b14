import { randomUUID } from "node:crypto";
import { createEmbedRequest } from "../domain/embed-request.js";
import { EmbedderError } from "../domain/errors.js";
import type { CreateJobInput, JobDocumentInput } from "../domain/jobs.js";
import { fromStore } from "./from-store.js";
import type { StoredDocument, StoredJob } from "./job-store.js";
import type { JobDeps, JobLimits } from "./job-service-deps.js";
import { planChunking } from "./plan-chunking.js";
import { ownerOf } from "./visible-job.js";

/**
 * Validates a new job and stores it queued, all at creation so a client
 * learns of a bad job at once rather than from a failed job later: the
 * documents (checkDocuments), the embedding options as a request would be
 * checked, the principal's active jobs (RATE_LIMITED beyond
 * `maxActivePerPrincipal`), and the target model, which must exist, take the
 * options and fit the chunking. Returns the stored job; running it is the
 * caller's.
 */
export async function admitJob(deps: JobDeps, input: CreateJobInput): Promise<StoredJob> {
  const { store, logger, limits, now } = deps;
  const { documents, options } = input;
  const { stored, totalBytes } = checkDocuments(documents, limits);
  // The options as a request's would be checked, and the model they name, before anything is stored.
  await deps.embedder.check(createEmbedRequest({ ...options, requestId: input.requestId, texts: [], priority: "background" }));
  const owner = ownerOf(input.principal);
  const active = fromStore(() => store.countActive(owner));
  if (active >= limits.maxActivePerPrincipal) {
    throw new EmbedderError("RATE_LIMITED", `${active} of your jobs are queued or running, the most allowed at once; wait for one to finish`, {
      retryAfterMs: 10_000,
      details: { limit: "jobs", active, max: limits.maxActivePerPrincipal },
    });
  }
  // The chunking must fit the model.
  const choice = await deps.registry.resolve(options.model);
  try {
    planChunking(choice.model, options, input.chunking);
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
  return job;
}

/**
 * Checks a job's documents against the limits, in the order a client fixes
 * them: their count, each text (not blank) and id (unique; "doc-<index>" when
 * empty), then their total bytes (text, id and metadata, UTF-8). Returns them
 * as they are stored (empty metadata dropped) with the total.
 */
function checkDocuments(documents: JobDocumentInput[], limits: JobLimits): { stored: Array<Omit<StoredDocument, "index" | "chunkCount">>; totalBytes: number } {
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
  return { stored, totalBytes };
}
