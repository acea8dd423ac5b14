import { EmbedderError } from "../domain/errors.js";
import type { JobResult } from "../domain/jobs.js";
import type { Principal } from "../domain/types.js";
import { encodeEmbedding } from "../postprocess/encode-embedding.js";
import { fromStore } from "./from-store.js";
import type { StoredDocument } from "./job-store.js";
import type { JobDeps } from "./job-service-deps.js";
import { visibleJob } from "./visible-job.js";

/** Results read from the store at a time while streaming. */
const RESULTS_PAGE = 256;

/**
 * The committed results of job `jobId` (JobService.results) in document and
 * chunk order, from the `offset`-th one, read from the store RESULTS_PAGE at
 * a time so a large job streams in bounded memory; each with its document's
 * id, metadata and chunk text, and its embedding in the job's types. Served
 * only as stored: a row damaged on disk ends the results with DATA_DAMAGED at
 * that row, after the good rows before it. JOB_NOT_FOUND when the caller may
 * not see the job.
 */
export async function* readJobResults(deps: Pick<JobDeps, "store" | "logger">, jobId: string, offset: number, principal: Principal | undefined): AsyncGenerator<JobResult> {
  const { store, logger } = deps;
  const job = visibleJob(store, jobId, principal);
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
}
