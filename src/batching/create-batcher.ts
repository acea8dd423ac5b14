import { EmbedderError } from "../domain/errors.js";
import { packBatch } from "./pack-batch.js";

/** One text waiting for inference. */
export interface BatchItem {
  /** Token ids after truncation. */
  ids: ArrayLike<number>;
  /** Requests mixing in one batch must share this key (same model file, output, pooling, settings). */
  key: string;
}

/** A batch the batcher hands to the runner: items of one key, sorted by length. */
export interface Batch<Item extends BatchItem, Context> {
  key: string;
  items: Item[];
  context: Context;
}

/** What a runner returns for a batch: one vector per item, in the batch's order. */
export interface BatchOutput {
  vectors: Float32Array[];
  inferenceMs: number;
  executionProvider: string;
}

/** A request's vectors in input order, with the inference time of the batches that held them. */
export interface SubmitResult {
  vectors: Float32Array[];
  /** Sum over the distinct batches that ran this request's items. */
  inferenceMs: number;
  executionProvider: string;
}

/**
 * Who waits for a submission: `online` (a client request) or `background` (a
 * document job), whose items run only on capacity online items leave idle.
 */
export type BatchPriority = "online" | "background";

/** Runs one batch. */
export type BatchRunner<Item extends BatchItem, Context> = (batch: Batch<Item, Context>) => Promise<BatchOutput>;

/** Limits of the batcher. */
export interface BatcherOptions<Item extends BatchItem, Context> {
  run: BatchRunner<Item, Context>;
  /** Batches running at once (the worker count: more only queues inside the pool). */
  maxInFlight: number;
  /** Most items per batch. */
  maxBatchSize: number;
  /** Most padded tokens per batch (items x longest item, rounded up to `sequenceAlignment`). */
  tokenBudget: number;
  /** Padded lengths are multiples of this (default 1); packing counts them so. */
  sequenceAlignment?: number;
  /**
   * Most items waiting, counted per priority: a request that would take its priority past it
   * is refused at once with OVERLOADED, unless nothing of its priority waits (then it is
   * taken whatever its size, so every request the server accepts as valid can be served).
   */
  maxQueue: number;
  /**
   * Most background batches running at once (default `maxInFlight - 1`, at
   * least 1), so that with more than one runner slot an online request never
   * waits for background work to finish.
   */
  maxBackgroundInFlight?: number;
  /** Told how many waiting items a cancelled request dropped unrun (for metrics). */
  onCancelled?: (items: number) => void;
}

/** Per-request options of a submission. */
export interface SubmitOptions<Context> {
  /** Most of this request's items in one batch (the seed's `config.batch_size`). */
  batchSizeCap?: number;
  /** Default `online`; `background` items wait while any online item waits and never share its batches. */
  priority?: BatchPriority;
  signal?: AbortSignal;
  /** Passed to the runner with any batch holding this request's items (first item's wins). */
  context: Context;
  /**
   * Told of each item as soon as the batch holding it finishes (`slot` is the
   * item's index in the submission), so streaming callers answer item by item.
   * When given, vectors are handed over here and not kept: the submission
   * resolves with an empty `vectors`.
   */
  onItem?: (slot: number, vector: Float32Array, executionProvider: string) => void;
}

/** The batcher: owns the queue, packs batches across requests, never loses an accepted item. */
export interface Batcher<Item extends BatchItem, Context> {
  /**
   * Queues a request's items and resolves with their vectors in input order.
   * Rejects at once with OVERLOADED when the queue bound would be exceeded, with
   * CANCELLED when `signal` aborts before its items ran (they are dropped
   * unrun), and with the runner's error for a failed batch.
   */
  submit(items: Item[], options: SubmitOptions<Context>): Promise<SubmitResult>;
  /**
   * Throws OVERLOADED when `count` more items of `priority` would exceed the queue bound now
   * while items of that priority wait (an empty queue takes a request of any size); callers
   * check before costly work (tokenization) so a refusal comes at once. `submit` checks again.
   * `pending` counts items on their way that are not queued yet (as if they were).
   */
  checkRoom(count: number, priority?: BatchPriority, pending?: number): void;
  /** Items waiting now (both priorities). */
  queueDepth(): number;
  /** Resolves once nothing waits or runs (for draining). */
  idle(): Promise<void>;
}

interface Pending<Item, Context> {
  item: Item;
  length: number;
  request: RequestState<Context>;
  slot: number;
  order: number;
  /** Batches taken while this item was the oldest waiting and not in them. */
  passedOver: number;
}

interface RequestState<Context> {
  background: boolean;
  results: Float32Array[];
  inferenceMs: number;
  executionProvider: string;
  batches: Set<number>;
  remaining: number;
  cap: number;
  context: Context;
  onItem?: (slot: number, vector: Float32Array, executionProvider: string) => void;
  settled: boolean;
  resolve(result: SubmitResult): void;
  reject(error: unknown): void;
}

/**
 * Creates a token-budget batcher. Whenever a runner slot is free it packs a
 * batch (packBatch) from everything waiting: the items of one key and close
 * lengths that waste the least padding, up to `maxBatchSize` items and
 * `tokenBudget` padded tokens, so batches mix requests. A free slot never waits
 * for more items; while every slot is busy, waiting items accumulate and give
 * packing more to choose from. No item starves: once the oldest waiting item was
 * passed over by 2 x `maxInFlight` batches, the next batch is built around it.
 * Online items always go first: a free slot takes background items (packed
 * the same way, among themselves) only while no online item waits, and at
 * most `maxBackgroundInFlight` background batches run at once.
 */
export function createBatcher<Item extends BatchItem, Context>(options: BatcherOptions<Item, Context>): Batcher<Item, Context> {
  let queue: Pending<Item, Context>[] = [];
  let inFlight = 0;
  let backgroundInFlight = 0;
  let backgroundQueued = 0;
  let sequence = 0;
  const maxBackgroundInFlight = options.maxBackgroundInFlight ?? Math.max(1, options.maxInFlight - 1);
  const maxPassOvers = 2 * options.maxInFlight;
  let batchCount = 0;
  let idleWaiters: Array<() => void> = [];

  const settleIdle = () => {
    if (queue.length === 0 && inFlight === 0) {
      for (const waiter of idleWaiters) waiter();
      idleWaiters = [];
    }
  };

  /** Removes `entries` from the queue, keeping the background count. */
  const dequeue = (keep: (entry: Pending<Item, Context>) => boolean) => {
    queue = queue.filter((entry) => {
      if (keep(entry)) return true;
      if (entry.request.background) backgroundQueued--;
      return false;
    });
  };

  /** The batch to run next, among online items when any waits, else among background items (when a background slot is free). */
  const takeBatch = (): Pending<Item, Context>[] | undefined => {
    const background = backgroundQueued === queue.length;
    if (background && backgroundInFlight >= maxBackgroundInFlight) return undefined;
    const eligible = background ? queue : queue.filter((entry) => !entry.request.background);
    // The queue is in arrival order (pushed in order, filtered in place), so its first item is the oldest.
    const oldest = eligible[0];
    const chosen = packBatch(eligible, options, oldest.passedOver >= maxPassOvers);
    const taken = new Set(chosen);
    if (!taken.has(oldest)) oldest.passedOver++;
    dequeue((entry) => !taken.has(entry));
    return chosen;
  };

  const dispatch = () => {
    while (inFlight < options.maxInFlight && queue.length > 0) {
      const chosen = takeBatch();
      if (chosen === undefined) return;
      const background = chosen[0].request.background;
      inFlight++;
      if (background) backgroundInFlight++;
      const batchNumber = batchCount++;
      const batch: Batch<Item, Context> = { key: chosen[0].item.key, items: chosen.map((entry) => entry.item), context: chosen[0].request.context };
      options.run(batch).then(
        (output) => {
          chosen.forEach((entry, index) => {
            const request = entry.request;
            if (request.settled) return;
            if (request.onItem === undefined) request.results[entry.slot] = output.vectors[index];
            else request.onItem(entry.slot, output.vectors[index], output.executionProvider);
            request.executionProvider = output.executionProvider;
            if (!request.batches.has(batchNumber)) {
              request.batches.add(batchNumber);
              request.inferenceMs += output.inferenceMs;
            }
            if (--request.remaining === 0) {
              request.settled = true;
              request.resolve({ vectors: request.results, inferenceMs: request.inferenceMs, executionProvider: request.executionProvider });
            }
          });
        },
        (error: unknown) => {
          for (const entry of chosen) {
            if (entry.request.settled) continue;
            entry.request.settled = true;
            entry.request.reject(error);
            dequeue((waiting) => waiting.request !== entry.request);
          }
        },
      ).finally(() => {
        inFlight--;
        if (background) backgroundInFlight--;
        dispatch();
        settleIdle();
      });
    }
  };

  const queuedOf = (priority?: BatchPriority): number => (priority === "background" ? backgroundQueued : queue.length - backgroundQueued);
  const overloaded = (queued: number) => new EmbedderError("OVERLOADED", "the server is at capacity; retry shortly", {
    retryAfterMs: 1000,
    details: { queued, limit: options.maxQueue },
  });
  const checkRoom = (count: number, priority?: BatchPriority, pending = 0): void => {
    const queued = queuedOf(priority) + pending;
    if (queued > 0 && queued + count > options.maxQueue) throw overloaded(queued);
  };

  return {
    checkRoom,
    submit(items, submitOptions) {
      if (submitOptions.signal?.aborted) return Promise.reject(new EmbedderError("CANCELLED", "the request was cancelled"));
      const background = submitOptions.priority === "background";
      try {
        checkRoom(items.length, submitOptions.priority);
      } catch (error) {
        return Promise.reject(error);
      }
      return new Promise<SubmitResult>((resolve, reject) => {
        const request: RequestState<Context> = {
          background,
          results: submitOptions.onItem === undefined ? new Array<Float32Array>(items.length) : [],
          inferenceMs: 0,
          executionProvider: "",
          batches: new Set(),
          remaining: items.length,
          cap: Math.max(1, submitOptions.batchSizeCap ?? options.maxBatchSize),
          context: submitOptions.context,
          onItem: submitOptions.onItem,
          settled: false,
          resolve,
          reject,
        };
        const signal = submitOptions.signal;
        const onAbort = () => {
          if (request.settled) return;
          request.settled = true;
          const before = queue.length;
          dequeue((entry) => entry.request !== request);
          options.onCancelled?.(before - queue.length);
          reject(new EmbedderError("CANCELLED", "the request was cancelled"));
          settleIdle();
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        const cleanup = () => signal?.removeEventListener("abort", onAbort);
        request.resolve = (result) => { cleanup(); resolve(result); };
        request.reject = (error) => { cleanup(); reject(error); };
        items.forEach((item, slot) => queue.push({ item, length: item.ids.length, request, slot, order: sequence++, passedOver: 0 }));
        if (background) backgroundQueued += items.length;
        if (items.length === 0) {
          request.settled = true;
          request.resolve({ vectors: [], inferenceMs: 0, executionProvider: "" });
        }
        dispatch();
      });
    },
    queueDepth: () => queue.length,
    idle: () => new Promise<void>((resolve) => {
      idleWaiters.push(resolve);
      settleIdle();
    }),
  };
}
