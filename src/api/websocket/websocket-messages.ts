import { create } from "@bufbuild/protobuf";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { EmbedderError } from "../../domain/errors.js";
import type { ChunkAnswer, TextChunk } from "../../streaming/create-stream-sessions.js";
import type { StreamSettings } from "../../streaming/stream-settings.js";
import {
  StreamConfigSchema,
  StreamEmbeddingsResponseSchema,
  TextChunkSchema,
} from "../../../gen/sutra/embedder/v1/embedder_pb.js";
import { messageToRestJson, restRequestToMessage } from "../rest/rest-json.js";
import { toChunkError, toStreamEmbeddingsResponse, toStreamSettings, toTextChunk } from "../stream-conversion.js";

/** Message types a client sends. */
export const CLIENT_MESSAGE_TYPES = ["handshake", "stream_embed", "add_chunk", "end_stream", "ping"] as const;

/** A message type a client sends. */
export type ClientMessageType = (typeof CLIENT_MESSAGE_TYPES)[number];

/** Message types the server sends. */
export type ServerMessageType = "handshake" | "stream_started" | "embedding" | "error" | "stream_end" | "pong";

/**
 * The envelope of every WebSocket message, both ways (docs/STREAMING.md):
 * `id` names the message (an answer carries the id of the message it answers),
 * `type` says what it is, `timestamp` is RFC 3339, `payload` its content.
 */
export interface Envelope<Type extends string = string> {
  id: string;
  type: Type;
  timestamp: string;
  payload: JsonObject;
}

/**
 * Reads one client message: JSON text with a string `type` the protocol knows
 * and an object `payload` (absent = {}); a missing `id` becomes "". Anything
 * else is INVALID_ARGUMENT (the connection stays open).
 */
export function parseClientMessage(text: string): Envelope<ClientMessageType> {
  let json: JsonValue;
  try {
    json = JSON.parse(text) as JsonValue;
  } catch (error) {
    throw new EmbedderError("INVALID_ARGUMENT", `the message is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new EmbedderError("INVALID_ARGUMENT", "a message must be a JSON object {id, type, timestamp, payload}");
  }
  const { id, type, timestamp, payload } = json;
  if (!CLIENT_MESSAGE_TYPES.includes(type as ClientMessageType)) {
    const shown = preview(type);
    throw new EmbedderError("INVALID_ARGUMENT", `unknown message type ${JSON.stringify(shown)} (expected one of ${CLIENT_MESSAGE_TYPES.join(", ")})`, {
      details: { type: shown },
    });
  }
  if (payload !== undefined && (payload === null || typeof payload !== "object" || Array.isArray(payload))) {
    throw new EmbedderError("INVALID_ARGUMENT", "payload must be a JSON object", { details: { field: "payload" } });
  }
  return {
    id: typeof id === "string" ? id : typeof id === "number" ? String(id) : "",
    type: type as ClientMessageType,
    timestamp: typeof timestamp === "string" ? timestamp : "",
    payload: payload ?? {},
  };
}

/** Longest part of a client's value an error message repeats, in UTF-16 units. */
const PREVIEW_LENGTH = 64;

/**
 * A client's value as an error repeats it (a string as it is, anything else as
 * JSON), cut to PREVIEW_LENGTH, so an answer is never larger than the message it answers.
 */
function preview(value: JsonValue | undefined): string {
  const text = typeof value === "string" ? value : JSON.stringify(value ?? null);
  return text.length > PREVIEW_LENGTH ? `${text.slice(0, PREVIEW_LENGTH)}...` : text;
}

/** Serialises a server message. */
export function serverMessage(id: string, type: ServerMessageType, payload: JsonObject): string {
  return JSON.stringify({ id, type, timestamp: new Date().toISOString(), payload } satisfies Envelope<ServerMessageType>);
}

/**
 * The settings of a `stream_embed` payload: the fields of StreamConfig in the
 * REST spellings (snake_case or camelCase, enum words such as "int8"), checked
 * as StreamEmbeddings checks its config.
 */
export function toWebSocketStreamSettings(payload: JsonObject, requestId: string): StreamSettings {
  return toStreamSettings(fromRestJson(StreamConfigSchema, payload), requestId);
}

/** The chunk of an `add_chunk` payload: {chunk_id, text, is_final, position}. */
export function toWebSocketChunk(payload: JsonObject): TextChunk {
  return toTextChunk(fromRestJson(TextChunkSchema, payload));
}

function fromRestJson<Schema extends typeof StreamConfigSchema | typeof TextChunkSchema>(schema: Schema, payload: JsonObject) {
  return restRequestToMessage(schema, { body: payload, bodyField: "*", variables: {}, query: new URLSearchParams() });
}

/**
 * The payload answering one chunk: for an `embedding` message, the
 * StreamEmbeddingsResponse in the REST JSON mapping (`chunk_id`, `embedding`
 * as a float array or an object of encodings, `metadata` {latency_ms,
 * sequence_position, model_used, timestamp}); for an `error` message,
 * errorPayload with the chunk's id and position.
 */
export function answerPayload(answer: ChunkAnswer): { type: "embedding" | "error"; payload: JsonObject } {
  if ("error" in answer) {
    return {
      type: "error",
      payload: { ...errorPayload(answer.error), chunk_id: answer.chunkId, sequence_position: answer.sequencePosition },
    };
  }
  const message = create(StreamEmbeddingsResponseSchema, toStreamEmbeddingsResponse(answer));
  return { type: "embedding", payload: messageToRestJson(StreamEmbeddingsResponseSchema, message) as JsonObject };
}

/**
 * The payload of an `error` message, in the seed's names: `error_code` (the
 * reason of the error table), `error_message`, `retry_after_ms` (0 when a
 * retry as is would not help) and `details`.
 */
export function errorPayload(error: EmbedderError): JsonObject {
  const chunkError = toChunkError(error);
  return {
    error_code: error.reason,
    error_message: error.message,
    retry_after_ms: chunkError.retryAfterMs ?? 0,
    details: error.details,
  };
}
