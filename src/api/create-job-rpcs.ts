import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { EmbedderError } from "../domain/errors.js";
import type { JobService } from "../domain/jobs.js";
import type { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { principalKey } from "./access-policy.js";
import {
  toCreateJobInput,
  toJobMessage,
  toJobPageLimit,
  toJobResultMessage,
  toJobStatusFilter,
  toListJobsResponse,
} from "./job-conversion.js";
import { requestIdOf } from "./request-context.js";
import { embedderErrorFor } from "./to-connect-error.js";

/** The job rpcs of EmbedderService. */
export type JobRpcs = Pick<ServiceImpl<typeof EmbedderService>, "createJob" | "getJob" | "listJobs" | "cancelJob" | "getJobResults">;

/**
 * The document-job rpcs (docs/JOBS.md) for every transport: they convert
 * proto messages to the job service's domain types and back, with the caller
 * (the admitted principal) so each caller sees its own jobs. Without a job
 * service (a server built without a data folder) they answer NOT_IMPLEMENTED.
 */
export function createJobRpcs(jobs: JobService | undefined): JobRpcs {
  const service = (context: HandlerContext): JobService => {
    if (jobs !== undefined) return jobs;
    throw new EmbedderError("NOT_IMPLEMENTED", `${context.method.name} needs the job store, which this server was built without`, {
      details: { rpc: `${context.service.typeName}/${context.method.name}` },
    });
  };
  return {
    async createJob(request, context) {
      try {
        const input = toCreateJobInput(request, requestIdOf(context), context.values.get(principalKey));
        return { job: toJobMessage(await service(context).create(input)) };
      } catch (reason) {
        throw embedderErrorFor(reason, context.signal);
      }
    },
    getJob(request, context) {
      return { job: toJobMessage(service(context).get(request.jobId, context.values.get(principalKey))) };
    },
    listJobs(request, context) {
      const filter = { limit: toJobPageLimit(request.limit), offset: request.offset, status: toJobStatusFilter(request.status) };
      return toListJobsResponse(service(context).list(filter, context.values.get(principalKey)));
    },
    cancelJob(request, context) {
      return { job: toJobMessage(service(context).cancel(request.jobId, context.values.get(principalKey))) };
    },
    async *getJobResults(request, context) {
      const results = service(context).results(request.jobId, { offset: Number(request.offset) }, context.values.get(principalKey));
      for await (const result of results) {
        if (context.signal.aborted) return;
        yield toJobResultMessage(result);
      }
    },
  };
}
