import type { EmbedRequest, EmbedStreamItem, Embedder } from "../domain/types.js";
import { createAnswerQueue } from "./answer-queue.js";

/**
 * One request, one embedding per text as soon as its batch finishes
 * (GenerateEmbeddingsStream): yields the pipeline's items in completion order
 * and finishes once every text was yielded. A per-text error (INPUT_TOO_LONG)
 * fails the whole call, as it fails the unary call; the pipeline tells it
 * before any batch finishes, so nothing was yielded by then. When the
 * consumer stops early, an item fails or `signal` aborts, the request's
 * texts still waiting are dropped from the queue. What is held is bounded by
 * the request: at most one vector per text.
 */
export async function* embedEach(embedder: Embedder, request: EmbedRequest, signal?: AbortSignal): AsyncGenerator<Extract<EmbedStreamItem, { embedding: unknown }>> {
  const cancel = new AbortController();
  const abort = () => cancel.abort(signal?.reason);
  if (signal?.aborted) abort();
  signal?.addEventListener("abort", abort, { once: true });
  const items = createAnswerQueue<EmbedStreamItem>();
  embedder.embedStream(request, (item) => items.push(item), cancel.signal).then(
    () => items.end(),
    (error: unknown) => items.fail(error),
  );
  try {
    for await (const item of items) {
      if ("error" in item) throw item.error;
      yield item;
    }
  } finally {
    signal?.removeEventListener("abort", abort);
    cancel.abort();
    items.discard();
  }
}
