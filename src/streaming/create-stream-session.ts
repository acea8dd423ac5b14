import { setMaxListeners } from "node:events";
import { performance } from "node:perf_hooks";
import { EmbedderError } from "../domain/errors.js";
import type { Embedder, EncodedEmbedding, RunInfo } from "../domain/types.js";
import { createAnswerQueue } from "./answer-queue.js";
import { CHUNK_REASONS } from "./chunk-reasons.js";
import type { ChunkAnswer, StreamLimits, StreamSession, TextChunk } from "./create-stream-sessions.js";
import type { StreamSettings } from "./stream-settings.js";

/** Counters every stream of a registry keeps up to date, for its stats. */
export interface StreamCounters {
  /** Max-latency timers armed now. */
  timers: number;
  /** Flushes the pipeline has not settled yet. */
  flushesInFlight: number;
}

/** What one stream needs from its registry. */
export interface StreamSessionDeps {
  id: string;
  requestId: string;
  run: RunInfo;
  settings: StreamSettings;
  limits: StreamLimits;
  embedder: Embedder;
  counters: StreamCounters;
  /** The error a stream ends with when the server shuts down. */
  shutdownError: () => EmbedderError;
  /** Told once, when the stream is closed, so the registry forgets it. */
  onClose: () => void;
}

/** A stream as its registry holds it: the session for the transport, and what only the registry calls. */
export interface StreamSessionEntry {
  session: StreamSession;
  /** Server shutdown: stops taking chunks, answers what it holds, then fails with `shutdownError()`. */
  shutdown: () => void;
}

interface Waiting {
  chunk: TextChunk;
  arrival: number;
  receivedAt: number;
  bytes: number;
}

type Outcome = { embedding: EncodedEmbedding; run: RunInfo; tokens: number } | { error: EmbedderError };

/**
 * Creates one stream (see StreamSession): buffers chunks and flushes them through
 * `embedder.embedStream` once `bufferSize` wait or the oldest has waited `maxLatencyMs`,
 * answers each chunk as its batch finishes, and counts what it holds against `limits`. A
 * flush failing for a reason in CHUNK_REASONS fails only its chunks; any other failure ends
 * the stream with it.
 */
export function createStreamSession(deps: StreamSessionDeps): StreamSessionEntry {
  const { settings, limits, counters } = deps;
  /** open: takes chunks; ending: flushing what it holds; finished: answers complete; closed: released. */
  let state: "open" | "ending" | "finished" | "closed" = "open";
  let endError: EmbedderError | undefined;
  let buffer: Waiting[] = [];
  let timer: NodeJS.Timeout | undefined;
  let received = 0;
  let pendingChunks = 0;
  let pendingBytes = 0;
  let flushes = 0;
  let roomWaiters: Array<() => void> = [];
  const cancel = new AbortController();
  // Every flush in flight listens on this signal; the pending-chunk limit bounds how many there are.
  setMaxListeners(0, cancel.signal);
  const queue = createAnswerQueue<ChunkAnswer>(() => {
    pendingChunks -= 1;
    wakeWriters();
  });

  const hasRoom = () => pendingChunks < limits.maxPendingChunks && pendingBytes < limits.maxPendingBytes;
  const wakeWriters = () => {
    if (roomWaiters.length === 0 || (state === "open" && !hasRoom())) return;
    const waiters = roomWaiters;
    roomWaiters = [];
    for (const waiter of waiters) waiter();
  };
  const stopTimer = () => {
    if (timer === undefined) return;
    clearTimeout(timer);
    timer = undefined;
    counters.timers -= 1;
  };

  const answer = (waiting: Waiting, outcome: Outcome) => {
    pendingBytes -= waiting.bytes;
    queue.push({
      chunkId: waiting.chunk.chunkId,
      arrival: waiting.arrival,
      sequencePosition: waiting.chunk.position > 0 ? waiting.chunk.position : waiting.arrival,
      latencyMs: performance.now() - waiting.receivedAt,
      timestamp: new Date(),
      ...outcome,
    });
    wakeWriters();
  };

  const finishIfDone = () => {
    if (state !== "ending" || buffer.length > 0 || flushes > 0) return;
    state = "finished";
    if (endError === undefined) queue.end();
    else queue.fail(endError);
  };

  const failStream = (error: EmbedderError) => {
    if (state === "finished" || state === "closed") return;
    stopTimer();
    for (const waiting of buffer) pendingBytes -= waiting.bytes;
    pendingChunks -= buffer.length;
    buffer = [];
    endError = error;
    state = "finished";
    cancel.abort();
    queue.fail(error);
    wakeWriters();
  };

  const flush = () => {
    stopTimer();
    if (buffer.length === 0) return;
    const batch = buffer;
    buffer = [];
    const answered = new Array<boolean>(batch.length).fill(false);
    flushes += 1;
    counters.flushesInFlight += 1;
    deps.embedder
      .embedStream(
        { ...settings.request, requestId: deps.requestId, texts: batch.map((waiting) => waiting.chunk.text) },
        (item) => {
          if (state === "closed" || answered[item.index]) return;
          answered[item.index] = true;
          answer(batch[item.index], "error" in item ? { error: item.error } : { embedding: item.embedding, run: item.run, tokens: item.tokens });
        },
        cancel.signal,
      )
      .catch((reason: unknown) => {
        if (state === "closed") return;
        const error = EmbedderError.from(reason);
        const missed = batch.filter((_, index) => !answered[index]);
        if (CHUNK_REASONS.has(error.reason)) {
          for (const waiting of missed) answer(waiting, { error });
          return;
        }
        for (const waiting of missed) pendingBytes -= waiting.bytes;
        pendingChunks -= missed.length;
        failStream(error);
      })
      .finally(() => {
        flushes -= 1;
        counters.flushesInFlight -= 1;
        finishIfDone();
      });
  };

  const end = () => {
    if (state !== "open") return;
    state = "ending";
    flush();
    finishIfDone();
    wakeWriters();
  };

  const session: StreamSession = {
    id: deps.id,
    run: deps.run,
    settings,
    accepting: () => state === "open",
    add(chunk) {
      if (state !== "open") return -1;
      const waiting: Waiting = { chunk, arrival: received, receivedAt: performance.now(), bytes: Buffer.byteLength(chunk.text) };
      received += 1;
      pendingChunks += 1;
      if (chunk.text.length === 0) {
        const label = chunk.chunkId === "" ? `chunk ${waiting.arrival}` : `chunk "${chunk.chunkId}"`;
        answer({ ...waiting, bytes: 0 }, {
          error: new EmbedderError("EMPTY_INPUT", `${label} is empty`, { details: { chunk_id: chunk.chunkId, arrival: waiting.arrival } }),
        });
      } else {
        pendingBytes += waiting.bytes;
        buffer.push(waiting);
        if (buffer.length >= settings.bufferSize) {
          flush();
        } else if (timer === undefined) {
          timer = setTimeout(flush, settings.maxLatencyMs);
          counters.timers += 1;
        }
      }
      if (chunk.isFinal) end();
      return waiting.arrival;
    },
    hasRoom,
    stats: () => ({ id: deps.id, received, pendingChunks, pendingBytes, full: !hasRoom() }),
    writable: () =>
      state !== "open" || hasRoom() ? Promise.resolve() : new Promise<void>((resolve) => roomWaiters.push(resolve)),
    end,
    fail: (error) => failStream(EmbedderError.from(error)),
    close() {
      if (state === "closed") return;
      state = "closed";
      stopTimer();
      buffer = [];
      pendingChunks = 0;
      pendingBytes = 0;
      cancel.abort();
      queue.discard();
      wakeWriters();
      deps.onClose();
    },
    answers: queue,
  };

  return {
    session,
    shutdown() {
      if (state !== "open") return;
      endError = deps.shutdownError();
      end();
    },
  };
}
