import { create } from "@bufbuild/protobuf";
import { EmbedderError } from "../domain/errors.js";
import type { JobService, JobSnapshot } from "../domain/jobs.js";
import { createMediaJobIndex } from "../jobs/create-media-job-index.js";
import { CreateJobRequestSchema, JobSchema } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import type { HttpRoute } from "./create-http-handler.js";
import { toCreateJobInput, toJobMessage } from "./job-conversion.js";
import { sendJson } from "./node-types.js";
import { invalidField, readBodyFields } from "./read-body-fields.js";
import { messageToRestJson } from "./rest/rest-json.js";
import { seedModelName } from "./seed-model-name.js";

/** A decimal media id without leading zeros, answered as the JSON number the seed shows (`"media_id": 123`). */
const NUMERIC_ID = /^(?:0|[1-9]\d{0,15})$/;

/**
 * The seed API's media routes (docs/REST.md, "Media embeddings"), also under
 * `/api/v1`, both for the `user` role. A media item's embedding is a document
 * job of one document (docs/JOBS.md) whose id is the `media_id`; the text
 * comes in the body, as this service keeps no media of its own:
 * - `POST /v1/media/{media_id}/embeddings` {text, embedding_model?,
 *   embedding_provider?, chunk_size?, chunk_overlap?} queues the job with the
 *   checks of CreateJob -> 202 {media_id, status: "accepted", message, job_id};
 * - `GET /v1/media/{media_id}/embeddings/status` -> {media_id, job_id, status
 *   (the job's), has_embeddings, embedding_count, total_chunks,
 *   embedding_model, dimensions, job (as `GET /v1/jobs/{job_id}`)};
 *   JOB_NOT_FOUND when the caller started no job for that media (the index
 *   of media to jobs is in memory: createMediaJobIndex).
 * Without a job service both answer NOT_IMPLEMENTED.
 */
export function createSeedMediaRoutes(jobs: JobService | undefined): HttpRoute[] {
  const index = createMediaJobIndex();
  const service = (route: string): JobService => {
    if (jobs !== undefined) return jobs;
    throw new EmbedderError("NOT_IMPLEMENTED", `${route} needs the job store, which this server was built without`, { details: { route } });
  };
  return [
    {
      method: "POST",
      path: "/v1/media/{media_id}/embeddings",
      access: "user",
      async handle({ response, requestId, principal, readJson, variables }) {
        const jobService = service("POST /v1/media/{media_id}/embeddings");
        const mediaId = variables.media_id;
        const body = readBodyFields(await readJson());
        const text = body.string("text");
        if (text === undefined) throw invalidField("text", "is required: the media item's text to embed");
        const message = create(CreateJobRequestSchema, {
          documents: [{ id: mediaId, text }],
          model: seedModelName(body.string("embedding_provider"), body.string("embedding_model") ?? ""),
          chunking: { chunkSize: body.integer("chunk_size", 0) ?? 0, chunkOverlap: body.integer("chunk_overlap", 0) ?? 0 },
        });
        const job = await jobService.create(toCreateJobInput(message, requestId, principal));
        index.remember(principal, mediaId, job.id);
        sendJson(response, 202, {}, { media_id: mediaIdJson(mediaId), status: "accepted", message: "Embedding generation started", job_id: job.id });
      },
    },
    {
      method: "GET",
      path: "/v1/media/{media_id}/embeddings/status",
      access: "user",
      async handle({ response, principal, variables }) {
        const jobService = service("GET /v1/media/{media_id}/embeddings/status");
        const mediaId = variables.media_id;
        const jobId = index.find(principal, mediaId);
        if (jobId === undefined) {
          throw new EmbedderError("JOB_NOT_FOUND", `no embedding job was started for media "${mediaId}"`, { details: { media_id: mediaId } });
        }
        sendJson(response, 200, {}, mediaStatusJson(mediaId, jobService.get(jobId, principal)));
      },
    },
  ];
}

function mediaIdJson(mediaId: string): string | number {
  return NUMERIC_ID.test(mediaId) && Number.isSafeInteger(Number(mediaId)) ? Number(mediaId) : mediaId;
}

function mediaStatusJson(mediaId: string, job: JobSnapshot): Record<string, unknown> {
  return {
    media_id: mediaIdJson(mediaId),
    job_id: job.id,
    status: job.status,
    has_embeddings: job.completedChunks > 0,
    embedding_count: job.completedChunks,
    total_chunks: job.totalChunks,
    embedding_model: job.modelId,
    dimensions: job.dimensions,
    job: messageToRestJson(JobSchema, create(JobSchema, toJobMessage(job))),
  };
}
