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

/** Envelope types a client sends: requests, and pongs answering the server's pings. */
export const CLIENT_MESSAGE_TYPES = ["request", "pong"] as const;

/** The `payload.action` of a client `request`. */
export const CLIENT_ACTIONS = ["handshake", "stream_embed", "add_chunk", "get_state"] as const;

/** A client request's action. */
export type ClientAction = (typeof CLIENT_ACTIONS)[number];

/** Envelope types the server sends. */
export type ServerMessageType = "response" | "error" | "ping";

/**
 * A client message as read: a `request` with its `action`, a `pong`, or an
 * `invalid` message with why it cannot be served. `id` names the message (the
 * server's answer carries it; "" when it has none), `payload` is its content.
 */
export type ClientMessage =
  | { id: string; type: "request"; action: ClientAction; payload: JsonObject }
  | { id: string; type: "pong"; payload: JsonObject }
  | { id: string; type: "invalid"; error: EmbedderError };

/**
 * Reads one client message, the envelope `{id, type, timestamp, payload}`:
 * JSON text whose `type` is `request` (with a known `payload.action`) or
 * `pong`, and whose `payload` is an object (absent = {}); a missing `id`
 * becomes "". Anything else is an `invalid` message with INVALID_ARGUMENT
 * and the id when it could be read (the connection stays open).
 */
export function parseClientMessage(text: string): ClientMessage {
  let json: JsonValue;
  try {
    json = JSON.parse(text) as JsonValue;
  } catch (error) {
    return invalid("", new EmbedderError("INVALID_ARGUMENT", `the message is not valid JSON: ${(error as Error).message}`, { cause: error }));
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    return invalid("", new EmbedderError("INVALID_ARGUMENT", "a message must be a JSON object {id, type, timestamp, payload}"));
  }
  const { id, type, payload = {} } = json;
  const messageId = typeof id === "string" ? id : typeof id === "number" ? String(id) : "";
  if (!CLIENT_MESSAGE_TYPES.includes(type as "request")) return invalid(messageId, unknownValue("type", type, CLIENT_MESSAGE_TYPES));
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    return invalid(messageId, new EmbedderError("INVALID_ARGUMENT", "payload must be a JSON object", { details: { field: "payload" } }));
  }
  if (type === "pong") return { id: messageId, type, payload };
  const { action } = payload;
  if (!CLIENT_ACTIONS.includes(action as ClientAction)) return invalid(messageId, unknownValue("payload.action", action, CLIENT_ACTIONS));
  return { id: messageId, type: "request", action: action as ClientAction, payload };
}

function invalid(id: string, error: EmbedderError): ClientMessage {
  return { id, type: "invalid", error };
}

/** Longest part of a client's value an error message repeats, in UTF-16 units. */
const PREVIEW_LENGTH = 64;

/**
 * INVALID_ARGUMENT for a `field` whose value is none of `known`, repeating at
 * most PREVIEW_LENGTH characters of it, so an answer is never larger than the message it answers.
 */
function unknownValue(field: string, value: JsonValue | undefined, known: readonly string[]): EmbedderError {
  const text = typeof value === "string" ? value : JSON.stringify(value ?? null);
  const shown = text.length > PREVIEW_LENGTH ? `${text.slice(0, PREVIEW_LENGTH)}...` : text;
  return new EmbedderError("INVALID_ARGUMENT", `unknown ${field} ${JSON.stringify(shown)} (expected one of ${known.join(", ")})`, {
    details: { field, value: shown },
  });
}

/** Serialises a server message in the envelope `{id, type, timestamp, payload}` (timestamp: now, RFC 3339). */
export function serverMessage(id: string, type: ServerMessageType, payload: JsonObject): string {
  return JSON.stringify({ id, type, timestamp: new Date().toISOString(), payload });
}

/** The object field `name` of a payload ({} when absent); any other value is INVALID_ARGUMENT. */
export function objectField(payload: JsonObject, name: string): JsonObject {
  const value = payload[name] ?? {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new EmbedderError("INVALID_ARGUMENT", `payload.${name} must be a JSON object`, { details: { field: name } });
  }
  return value;
}

/** Longest session id a client may name: it is repeated in every `state` and stream answer. */
const MAX_SESSION_ID_LENGTH = 256;

/**
 * The `session_id` of a payload when it is a non-empty string (else
 * undefined); one longer than MAX_SESSION_ID_LENGTH is INVALID_ARGUMENT, so
 * small requests never get large answers.
 */
export function sessionIdField(payload: JsonObject): string | undefined {
  const sessionId = stringField(payload, "session_id");
  if (sessionId !== undefined && sessionId.length > MAX_SESSION_ID_LENGTH) {
    throw new EmbedderError("INVALID_ARGUMENT", `session_id must be at most ${MAX_SESSION_ID_LENGTH} characters, got ${sessionId.length}`, {
      details: { field: "session_id", max: MAX_SESSION_ID_LENGTH },
    });
  }
  return sessionId;
}

/** The string field `name` of a payload when it is a non-empty string, else undefined. */
export function stringField(payload: JsonObject, name: string): string | undefined {
  const value = payload[name];
  return typeof value === "string" && value !== "" ? value : undefined;
}

/**
 * The settings of a `stream_embed` request: its `config` holds the fields of
 * StreamConfig in the REST spellings (`dimensions`, `buffer_size`,
 * `max_latency_ms`, `model`, and the embedding options), checked as
 * StreamEmbeddings checks its config.
 */
export function toWebSocketStreamSettings(payload: JsonObject, requestId: string): StreamSettings {
  return toStreamSettings(fromRestJson(StreamConfigSchema, objectField(payload, "config")), requestId);
}

/** The chunk of an `add_chunk` request: {chunk_id, text, is_final, position} beside its `action`. */
export function toWebSocketChunk(payload: JsonObject): TextChunk {
  const chunk = Object.fromEntries(Object.entries(payload).filter(([field]) => field !== "action"));
  return toTextChunk(fromRestJson(TextChunkSchema, chunk));
}

function fromRestJson<Schema extends typeof StreamConfigSchema | typeof TextChunkSchema>(schema: Schema, payload: JsonObject) {
  return restRequestToMessage(schema, { body: payload, bodyField: "*", variables: {}, query: new URLSearchParams() });
}

/**
 * The message answering one chunk: a `response` {chunk_id, embedding (a float
 * array, or an object of encodings), metadata {latency_ms, sequence_position,
 * model_used, quality_score (the model's benchmark score, 0 = unknown),
 * timestamp}}; or an `error` (errorPayload) with the chunk's id and position.
 */
export function answerPayload(answer: ChunkAnswer): { type: "response" | "error"; payload: JsonObject } {
  if ("error" in answer) {
    return { type: "error", payload: { ...errorPayload(answer.error, answer.chunkId), sequence_position: answer.sequencePosition } };
  }
  const message = create(StreamEmbeddingsResponseSchema, toStreamEmbeddingsResponse(answer));
  const json = messageToRestJson(StreamEmbeddingsResponseSchema, message) as JsonObject;
  return { type: "response", payload: { ...json, metadata: { ...(json.metadata as JsonObject), quality_score: answer.run.qualityScore } } };
}

/**
 * The payload of an `error` message: `error_code` (the reason of the error
 * table), `error_message`, `chunk_id` (the chunk it answers, when it answers
 * one), `retry_after_ms` (0 when a retry as is would not help) and `details`.
 */
export function errorPayload(error: EmbedderError, chunkId?: string): JsonObject {
  return {
    error_code: error.reason,
    error_message: error.message,
    ...(chunkId === undefined ? {} : { chunk_id: chunkId }),
    retry_after_ms: toChunkError(error).retryAfterMs ?? 0,
    details: error.details,
  };
}
