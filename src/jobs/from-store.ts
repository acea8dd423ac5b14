import { EmbedderError } from "../domain/errors.js";
import { JobStoreError } from "./job-store-error.js";

/**
 * Runs a store call for an rpc, turning store failures into errors a client
 * can act on: a full store is OVERLOADED (RESOURCE_EXHAUSTED, retry later), a
 * corrupt or unreadable one INTERNAL with a message that names no path (the
 * log has the details).
 */
export function fromStore<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (!(error instanceof JobStoreError)) throw error;
    if (error.kind === "full") {
      throw new EmbedderError("OVERLOADED", "the job store is full; retry after finished jobs expire or the operator frees space", {
        retryAfterMs: 60_000, details: { store: "full" }, cause: error,
      });
    }
    throw new EmbedderError("INTERNAL", error.kind === "corrupt" ? "the job store is corrupt; the operator must restore or move it aside" : "the job store cannot be read or written", {
      details: { store: error.kind }, cause: error,
    });
  }
}
