import { EmbedderError } from "../domain/errors.js";
import type { EmbedRequest } from "../domain/types.js";

/** Request limits the front door enforces before anything is queued (docs/AUTH.md, "Request limits"). */
export interface RequestLimits {
  /** Most texts in one request (`SUTRA_MAX_INPUTS`, 2048 by default). */
  maxInputs: number;
}

/** Smallest and largest explicit `dimensions` (0 means the model's native size). */
export const DIMENSIONS_RANGE = { min: 64, max: 4096 } as const;

/** Smallest and largest `config.batch_size`. */
export const BATCH_SIZE_RANGE = { min: 1, max: 256 } as const;

/**
 * The one check that a text the client sent is well-formed Unicode, whatever
 * carried it. A lone surrogate (JSON can spell one as an escape, `"\ud800"`)
 * is refused, and so are bytes that are not UTF-8: the request decoders turn
 * those into lone surrogates instead of U+FFFD (see `decodeUtf8Marked`), so
 * they reach this same check rather than being embedded as a text the client
 * never sent. INVALID_ARGUMENT with details `{field, index}`: `index` is the
 * item's position when the text is an item of a list (`texts[1]`,
 * `documents[1].text`) or a message of a request stream.
 */
export function checkWellFormedText(text: string, field: string, index?: number): void {
  if (text.isWellFormed()) return;
  const where = index === undefined ? field : `${field}[${index}]`;
  throw new EmbedderError("INVALID_ARGUMENT", `${where} is not well-formed text: it holds a lone surrogate or bytes that are not UTF-8`, {
    details: index === undefined ? { field } : { field, index },
  });
}

/**
 * Checks the parts of a request that need no model: the number of texts
 * (1..maxInputs), that none is
 * empty or ill-formed (checkWellFormedText), `dimensions` (0 or 64..4096) and
 * `config.batch_size` (1..256). It is pure and throws the first violation as an
 * EmbedderError (EMPTY_INPUT, TOO_MANY_INPUTS, INVALID_DIMENSIONS,
 * INVALID_ARGUMENT) whose details name the offending value, so every transport
 * (gRPC, Connect, REST, the OpenAI dialect, WebSocket) rejects the same inputs
 * the same way before anything is queued. Model-dependent checks (UNKNOWN_MODEL,
 * INPUT_TOO_LONG, supported dimensions) belong to the local engine.
 */
export function validateEmbedRequest(request: EmbedRequest, limits: RequestLimits): void {
  const { texts } = request;
  const count = texts.length;
  if (count === 0) {
    throw new EmbedderError("EMPTY_INPUT", "texts must contain at least one text", {
      details: { count: 0 },
    });
  }
  if (count > limits.maxInputs) {
    throw new EmbedderError("TOO_MANY_INPUTS", `texts has ${count} entries, more than the limit of ${limits.maxInputs}`, {
      details: { count, limit: limits.maxInputs },
    });
  }
  const emptyIndex = texts.findIndex((text) => text.length === 0);
  if (emptyIndex !== -1) {
    throw new EmbedderError("EMPTY_INPUT", `texts[${emptyIndex}] is empty`, { details: { index: emptyIndex } });
  }
  request.texts.forEach((text, index) => checkWellFormedText(text, "texts", index));
  validateEmbedSettings(request);
}

/**
 * The settings half of {@link validateEmbedRequest}, for a request whose
 * inputs come later (a stream when it opens, a job when it is created):
 * `dimensions` (0 or 64..4096, else INVALID_DIMENSIONS) and
 * `config.batch_size` (1..256, else INVALID_ARGUMENT).
 */
export function validateEmbedSettings(request: Pick<EmbedRequest, "dimensions" | "config">): void {
  const { dimensions } = request;
  const dimensionsValid =
    Number.isInteger(dimensions) &&
    (dimensions === 0 || (dimensions >= DIMENSIONS_RANGE.min && dimensions <= DIMENSIONS_RANGE.max));
  if (!dimensionsValid) {
    throw new EmbedderError(
      "INVALID_DIMENSIONS",
      `dimensions must be 0 (the model's native size) or between ${DIMENSIONS_RANGE.min} and ${DIMENSIONS_RANGE.max}, got ${dimensions}`,
      { details: { dimensions, min: DIMENSIONS_RANGE.min, max: DIMENSIONS_RANGE.max } },
    );
  }
  const { batchSize } = request.config;
  if (
    batchSize !== undefined &&
    !(Number.isInteger(batchSize) && batchSize >= BATCH_SIZE_RANGE.min && batchSize <= BATCH_SIZE_RANGE.max)
  ) {
    throw new EmbedderError(
      "INVALID_ARGUMENT",
      `config.batch_size must be between ${BATCH_SIZE_RANGE.min} and ${BATCH_SIZE_RANGE.max}, got ${batchSize}`,
      { details: { field: "config.batch_size", value: batchSize, min: BATCH_SIZE_RANGE.min, max: BATCH_SIZE_RANGE.max } },
    );
  }
}
