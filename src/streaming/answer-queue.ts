/**
 * A queue that callbacks push into and one consumer drains as an async
 * iterator, in push order: the bridge between the pipeline's per-item
 * callbacks and the pull-based response streams of the transports.
 */
export interface AnswerQueue<T> extends AsyncIterable<T> {
  /** Adds an item; ignored once the queue has ended, failed or been discarded. */
  push(item: T): void;
  /** The iteration finishes once the items already pushed are taken. */
  end(): void;
  /** The iteration throws `error` once the items already pushed are taken. */
  fail(error: unknown): void;
  /** Drops the items not taken yet and finishes the iteration at once (the consumer is gone). */
  discard(): void;
  /** Items pushed and not taken yet. */
  size(): number;
}

/**
 * Creates an AnswerQueue. `onTake` is told of each item as the consumer takes
 * it, which is when a producer that bounds what it holds may accept more.
 * The queue holds whatever is pushed: bounding it is the producer's business.
 */
export function createAnswerQueue<T>(onTake?: (item: T) => void): AnswerQueue<T> {
  const items: T[] = [];
  let head = 0;
  let finished = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;

  const notify = (): void => {
    const waiter = wake;
    wake = undefined;
    waiter?.();
  };

  async function* iterate(): AsyncGenerator<T> {
    for (;;) {
      if (head < items.length) {
        const item = items[head];
        items[head] = undefined as T;
        head += 1;
        if (head === items.length) {
          items.length = 0;
          head = 0;
        }
        onTake?.(item);
        yield item;
        continue;
      }
      if (failure !== undefined) throw failure.error;
      if (finished) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  }

  return {
    push(item) {
      if (finished || failure !== undefined) return;
      items.push(item);
      notify();
    },
    end() {
      finished = true;
      notify();
    },
    fail(error) {
      if (finished || failure !== undefined) return;
      failure = { error };
      notify();
    },
    discard() {
      items.length = 0;
      head = 0;
      failure = undefined;
      finished = true;
      notify();
    },
    size: () => items.length - head,
    [Symbol.asyncIterator]: iterate,
  };
}
