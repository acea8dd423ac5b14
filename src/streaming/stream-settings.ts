import { EmbedderError } from "../domain/errors.js";
import { validateEmbedSettings } from "../front-door/validate-request.js";
import type { EmbedRequest } from "../domain/types.js";

/** The settings of one StreamEmbeddings (or WebSocket) stream, from its first message. */
export interface StreamSettings {
  /** How every chunk is embedded: the options of a GenerateEmbeddings request; `texts` is ignored. */
  request: EmbedRequest;
  /** A stream's waiting chunks are flushed to the pipeline once this many wait. */
  bufferSize: number;
  /** ... or once the oldest waiting chunk has waited this long, in milliseconds. */
  maxLatencyMs: number;
}

/** `buffer_size`: 0 asks for the default. */
export const BUFFER_SIZE_RANGE = { min: 1, max: 256, default: 32 } as const;

/** `max_latency_ms`: 0 asks for the default. */
export const MAX_LATENCY_MS_RANGE = { min: 1, max: 10_000, default: 50 } as const;

/**
 * Settles a stream's settings from what its config message asked for: 0
 * means the default (32 chunks, 50 ms), values out of range are
 * INVALID_ARGUMENT, and the embedding options are checked as a
 * GenerateEmbeddings request's settings are (INVALID_DIMENSIONS,
 * INVALID_ARGUMENT), so a bad config fails the stream at its first message.
 * What needs the model (UNKNOWN_MODEL, sizes the model cannot give) is the
 * front door's `check` when the stream opens, still before any chunk.
 */
export function resolveStreamSettings(asked: { request: EmbedRequest; bufferSize: number; maxLatencyMs: number }): StreamSettings {
  const bufferSize = asked.bufferSize === 0 ? BUFFER_SIZE_RANGE.default : asked.bufferSize;
  const maxLatencyMs = asked.maxLatencyMs === 0 ? MAX_LATENCY_MS_RANGE.default : asked.maxLatencyMs;
  checkRange("buffer_size", bufferSize, BUFFER_SIZE_RANGE);
  checkRange("max_latency_ms", maxLatencyMs, MAX_LATENCY_MS_RANGE);
  validateEmbedSettings(asked.request);
  return { request: { ...asked.request, texts: [] }, bufferSize, maxLatencyMs };
}

function checkRange(field: string, value: number, range: { min: number; max: number }): void {
  if (Number.isInteger(value) && value >= range.min && value <= range.max) return;
  throw new EmbedderError("INVALID_ARGUMENT", `${field} must be between ${range.min} and ${range.max} (0 = default), got ${value}`, {
    details: { field, value, min: range.min, max: range.max },
  });
}
