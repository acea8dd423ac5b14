import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { EmbedderError } from "../domain/errors.js";
import type { JobService } from "../domain/jobs.js";
import type { Embedder } from "../domain/types.js";
import type { StreamSessions } from "../streaming/create-stream-sessions.js";
import type { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import {
  toEmbedRequest,
  answersInBinary,
  toGenerateEmbeddingsResponse,
  toGetHealthResponse,
  toListModelsResponse,
  toDownloadModelResponse,
  toModel,
  toModelFilter,
} from "./proto-conversion.js";
import { createJobRpcs } from "./create-job-rpcs.js";
import { createStreamingRpcs } from "./create-streaming-rpcs.js";
import { answerHeaders, callerOf, requestIdOf } from "./request-context.js";
import { embedderErrorFor } from "./to-connect-error.js";

/** What the EmbedderService implementation needs. */
export interface EmbedderServiceDeps {
  embedder: Embedder;
  /** Where StreamEmbeddings streams are opened and accounted for. */
  streams: StreamSessions;
  /** Document jobs (docs/JOBS.md); absent = the job rpcs answer NOT_IMPLEMENTED. */
  jobs?: JobService;
}

/**
 * The EmbedderService implementation every transport calls: the Connect router
 * (gRPC, gRPC-Web, Connect) and the REST transcoder use this same object, so a
 * REST call and a gRPC call run the same code. It converts proto messages to
 * domain types, calls the front door (which validates), and
 * sets the answer headers (answerHeaders: timings, provider, dimensions policy). Failures are thrown as EmbedderError; the
 * transports map them (error interceptor, REST envelope). The streaming rpcs
 * live in createStreamingRpcs. GetModel and DownloadModel answer
 * NOT_IMPLEMENTED on an embedder without them; a failed download is that
 * model's status, never the service's health.
 */
export function createEmbedderService(deps: EmbedderServiceDeps): ServiceImpl<typeof EmbedderService> {
  return {
    async generateEmbeddings(request, context) {
      const requestId = requestIdOf(context);
      try {
        const result = await deps.embedder.embed(toEmbedRequest(request, requestId, callerOf(context)), context.signal);
        for (const [name, value] of Object.entries(answerHeaders(result))) {
          context.responseHeader.set(name, value);
        }
        return toGenerateEmbeddingsResponse(result, requestId, answersInBinary(context.requestHeader.get("content-type")));
      } catch (reason) {
        throw embedderErrorFor(reason, context.signal);
      }
    },
    ...createStreamingRpcs(deps),
    ...createJobRpcs(deps.jobs),
    async listModels(request) {
      return toListModelsResponse(await deps.embedder.listModels(toModelFilter(request)));
    },
    async getModel(request, context) {
      if (!deps.embedder.getModel) throw notImplemented(context);
      return { model: toModel(await deps.embedder.getModel(request.modelId)) };
    },
    async downloadModel(request, context) {
      if (!deps.embedder.downloadModel) throw notImplemented(context);
      return toDownloadModelResponse(await deps.embedder.downloadModel(request.modelId, request.revision));
    },
    getHealth() {
      return toGetHealthResponse(deps.embedder.health());
    },
  };
}

function notImplemented(context: HandlerContext): EmbedderError {
  return new EmbedderError("NOT_IMPLEMENTED", `${context.method.name} is not implemented yet`, {
    details: { rpc: `${context.service.typeName}/${context.method.name}` },
  });
}
