import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { EmbedderError } from "../domain/errors.js";
import type { EmbedStreamItem } from "../domain/types.js";
import type { ChunkAnswer, TextChunk } from "../streaming/create-stream-sessions.js";
import { resolveStreamSettings, type StreamSettings } from "../streaming/stream-settings.js";
import type {
  ChunkErrorSchema,
  GenerateEmbeddingsStreamResponseSchema,
  StreamConfig,
  StreamEmbeddingsResponseSchema,
  TextChunk as TextChunkMessage,
} from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { retryAfterSeconds } from "./error-table.js";
import { toEmbedRequest, toEmbeddingMessage } from "./proto-conversion.js";

/**
 * The settings of a stream from its `StreamConfig`: the embedding options
 * convert exactly as a GenerateEmbeddings request's do (same defaults, same
 * checks), then `buffer_size` and `max_latency_ms` are settled
 * (resolveStreamSettings).
 */
export function toStreamSettings(config: StreamConfig, requestId: string): StreamSettings {
  const request = toEmbedRequest({ ...config, texts: [], allowCrossModelFallback: false, user: "" }, requestId);
  return resolveStreamSettings({ request, bufferSize: config.bufferSize, maxLatencyMs: config.maxLatencyMs });
}

/** A `TextChunk` message as the stream session takes it (`position` as a number; 2^53 is far beyond any stream). */
export function toTextChunk(message: TextChunkMessage): TextChunk {
  return { chunkId: message.chunkId, text: message.text, isFinal: message.isFinal, position: Number(message.position) };
}

/**
 * The answer to one chunk as a `StreamEmbeddingsResponse`: the embedding
 * (packed bytes with `binary`, see answersInBinary) and its metadata, or a `ChunkError` carrying the reason (the error table's
 * reason, as in every other error envelope), the message and, for errors worth
 * retrying, `retry_after_ms`.
 */
export function toStreamEmbeddingsResponse(answer: ChunkAnswer, binary = false): MessageInitShape<typeof StreamEmbeddingsResponseSchema> {
  const metadata = {
    latencyMs: answer.latencyMs,
    sequencePosition: BigInt(answer.sequencePosition),
    timestamp: timestampFromDate(answer.timestamp),
  };
  if ("error" in answer) return { chunkId: answer.chunkId, metadata, error: toChunkError(answer.error) };
  return {
    chunkId: answer.chunkId,
    embedding: toEmbeddingMessage(answer.embedding, binary),
    metadata: { ...metadata, modelUsed: answer.run.modelId },
  };
}

/**
 * A per-chunk error: `code` is the reason, `retry_after_ms` the error's own
 * wait or, for reasons that always name one (OVERLOADED, RATE_LIMITED), the
 * table's default; 0 when retrying as is would not help.
 */
export function toChunkError(error: EmbedderError): MessageInitShape<typeof ChunkErrorSchema> {
  const retryAfter = retryAfterSeconds(error);
  return {
    code: error.reason,
    message: error.message,
    retryAfterMs: error.retryAfterMs ?? (retryAfter === undefined ? 0 : retryAfter * 1000),
  };
}

/** One GenerateEmbeddingsStream answer: the input's index, its embedding (packed bytes with `binary`, see answersInBinary), its tokens and what ran it. */
export function toGenerateEmbeddingsStreamResponse(
  item: Extract<EmbedStreamItem, { embedding: unknown }>,
  binary = false,
): MessageInitShape<typeof GenerateEmbeddingsStreamResponseSchema> {
  return { index: item.index, embedding: toEmbeddingMessage(item.embedding, binary), tokens: item.tokens, modelInfo: { ...item.run } };
}
