import { EmbedderError } from "../domain/errors.js";
import type { Metrics } from "./metrics.js";

/** Counts failed requests in `sutra_failures_total` by reason, each failure once. */
export type FailureCounter = (error: unknown) => void;

/**
 * The service's one failure counter. The front door counts every failure of
 * a call it ran; transports call the same counter where they answer with an
 * error, for refusals that never reached the door (access, malformed
 * messages). A failure already counted, or one whose cause was (a transport
 * may wrap the door's error), is skipped, so each is counted once whoever
 * sees it last.
 */
export function createFailureCounter(metrics: Metrics): FailureCounter {
  const counted = new WeakSet<object>();
  const seen = (value: unknown) => typeof value === "object" && value !== null && counted.has(value);
  return (reason) => {
    const error = EmbedderError.from(reason);
    if (seen(reason) || seen(error) || seen(error.cause)) return;
    counted.add(error);
    if (typeof reason === "object" && reason !== null) counted.add(reason);
    metrics.failuresTotal.inc({ reason: error.reason });
  };
}
