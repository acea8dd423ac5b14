import type { ServiceImpl } from "@connectrpc/connect";
import { EmbedderError } from "../domain/errors.js";
import type { Embedder } from "../domain/types.js";
import type { StreamSessions, TextChunk } from "../streaming/create-stream-sessions.js";
import { embedEach } from "../streaming/embed-each.js";
import { pipeChunks } from "../streaming/pipe-chunks.js";
import type { EmbedderService, StreamEmbeddingsRequest } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { principalKey } from "./access-policy.js";
import { toEmbedRequest } from "./proto-conversion.js";
import { answersInBinary } from "./proto-conversion.js";
import { callerOf, requestIdOf } from "./request-context.js";
import { toGenerateEmbeddingsStreamResponse, toStreamEmbeddingsResponse, toStreamSettings, toTextChunk } from "./stream-conversion.js";
import { embedderErrorFor } from "./to-connect-error.js";

/** What the streaming rpcs need. */
export interface StreamingRpcsDeps {
  embedder: Embedder;
  streams: StreamSessions;
}

/**
 * The two streaming rpcs of EmbedderService, for every transport that serves
 * it (gRPC, gRPC-Web, Connect, and the REST transcoding of
 * GenerateEmbeddingsStream as NDJSON or SSE):
 *
 * - GenerateEmbeddingsStream takes its request as GenerateEmbeddings does
 *   and answers one message per text as soon as its batch finishes
 *   (completion order, with the index);
 * - StreamEmbeddings takes the config as its first message, opens a stream
 *   session (the model is resolved before any chunk is read), then pipes chunk
 *   messages in and answers out with backpressure (pipeChunks).
 *
 * Failures end the call with the error table's status; per-chunk failures of
 * StreamEmbeddings travel in the answer's `error` instead.
 */
export function createStreamingRpcs(
  deps: StreamingRpcsDeps,
): Pick<ServiceImpl<typeof EmbedderService>, "generateEmbeddingsStream" | "streamEmbeddings"> {
  return {
    async *generateEmbeddingsStream(request, context) {
      try {
        const embedRequest = toEmbedRequest(request, requestIdOf(context), callerOf(context));
        const binary = answersInBinary(context.requestHeader.get("content-type"));
        for await (const item of embedEach(deps.embedder, embedRequest, context.signal)) {
          yield toGenerateEmbeddingsStreamResponse(item, binary);
        }
      } catch (reason) {
        throw embedderErrorFor(reason, context.signal);
      }
    },
    async *streamEmbeddings(requests, context) {
      const requestId = requestIdOf(context);
      const iterator = requests[Symbol.asyncIterator]();
      try {
        const first = await iterator.next();
        if (first.done === true || first.value.message.case !== "config") {
          throw new EmbedderError("INVALID_ARGUMENT", "the first message of a stream must carry its config");
        }
        const settings = toStreamSettings(first.value.message.value, requestId);
        const principal = context.values.get(principalKey);
        const binary = answersInBinary(context.requestHeader.get("content-type"));
        const session = await deps.streams.open({ ...settings, request: { ...settings.request, principal } }, requestId);
        for await (const answer of pipeChunks(session, chunksOf(iterator), context.signal)) {
          yield toStreamEmbeddingsResponse(answer, binary);
        }
      } catch (reason) {
        throw embedderErrorFor(reason, context.signal);
      }
    },
  };
}

/** The chunks after the config; another config, or a message with neither, is INVALID_ARGUMENT. */
async function* chunksOf(iterator: AsyncIterator<StreamEmbeddingsRequest>): AsyncGenerator<TextChunk> {
  for (;;) {
    const next = await iterator.next();
    if (next.done === true) return;
    const { message } = next.value;
    if (message.case !== "chunk") {
      throw new EmbedderError("INVALID_ARGUMENT", "after the config, every message of a stream must carry a chunk");
    }
    yield toTextChunk(message.value);
  }
}
