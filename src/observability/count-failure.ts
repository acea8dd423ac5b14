import type { EmbedderError } from "../domain/errors.js";
import type { Metrics } from "./metrics.js";

/** Errors already in `sutra_failures_total` (the pipeline counts its own before they reach a transport). */
const counted = new WeakSet<object>();

/** Notes that `error` was counted elsewhere (by the pipeline), so the transport does not count it again. */
export function markFailureCounted(error: unknown): void {
  if (typeof error === "object" && error !== null) counted.add(error);
}

/**
 * Counts a failed request in `sutra_failures_total` by reason, once: the
 * transports call it where they answer with an error (refusals by the access
 * check, validation, the pipeline), and an error the pipeline already counted
 * (or whose cause it counted) is skipped.
 */
export function countFailure(metrics: Metrics, error: EmbedderError): void {
  if (counted.has(error) || (typeof error.cause === "object" && error.cause !== null && counted.has(error.cause))) return;
  counted.add(error);
  metrics.failuresTotal.inc({ reason: error.reason });
}
