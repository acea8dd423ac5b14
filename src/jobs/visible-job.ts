import { EmbedderError } from "../domain/errors.js";
import type { Principal } from "../domain/types.js";
import { fromStore } from "./from-store.js";
import type { JobStore, StoredJob } from "./job-store.js";

/** The owner a job of `principal` is stored under: its id, or "anonymous" when the server runs without auth. */
export function ownerOf(principal: Principal | undefined): string {
  return principal?.id ?? "anonymous";
}

/** Whether `principal` sees every owner's jobs: an admin, or anyone when the server runs without auth. */
export function seesAll(principal: Principal | undefined): boolean {
  return principal === undefined || principal.role === "admin";
}

/**
 * The job if the caller may see it; JOB_NOT_FOUND otherwise (unknown,
 * expired, or someone else's), so a client cannot learn that another's job
 * exists.
 */
export function visibleJob(store: Pick<JobStore, "getJob">, jobId: string, principal: Principal | undefined): StoredJob {
  const job = jobId === "" ? undefined : fromStore(() => store.getJob(jobId));
  if (job === undefined || (!seesAll(principal) && job.owner !== ownerOf(principal))) {
    throw new EmbedderError("JOB_NOT_FOUND", `no job with id "${jobId}"`, { details: { job_id: jobId } });
  }
  return job;
}
