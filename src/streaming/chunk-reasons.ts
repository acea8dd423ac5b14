import type { ErrorReason } from "../domain/errors.js";

/**
 * Reasons that fail only the chunks they hit: the chunk itself (EMPTY_INPUT,
 * INPUT_TOO_LONG) or a passing condition worth a retry (OVERLOADED, a worker
 * that died, ...). Any other failure concerns the whole stream (its model,
 * its settings, a bug) and ends it with a status.
 */
export const CHUNK_REASONS: ReadonlySet<ErrorReason> = new Set<ErrorReason>([
  "EMPTY_INPUT",
  "INPUT_TOO_LONG",
  "PAYLOAD_TOO_LARGE",
  "RATE_LIMITED",
  "OVERLOADED",
  "WORKER_FAILED",
  "UPSTREAM_UNAVAILABLE",
  "UPSTREAM_BAD_RESPONSE",
  "SHUTTING_DOWN",
  "DEADLINE_EXCEEDED",
  "MODEL_NOT_READY",
]);
