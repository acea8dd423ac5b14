import { EmbedderError } from "../domain/errors.js";
import type { Embedder, EncodedEmbedding, RunInfo } from "../domain/types.js";
import { createStreamSession, type StreamSessionEntry } from "./create-stream-session.js";
import type { StreamSettings } from "./stream-settings.js";

/** One text of a stream, as every streaming transport hands it over. */
export interface TextChunk {
  /** The client's id for the chunk, echoed in its answer. */
  chunkId: string;
  text: string;
  /** The last chunk: the stream ends once everything sent before it is answered. */
  isFinal: boolean;
  /** The client's position for the chunk; 0 = none given. */
  position: number;
}

/** What every answer to a chunk carries. */
export interface ChunkAnswerBase {
  chunkId: string;
  /** 0-based order in which the chunk arrived in its stream (what `add` returned). */
  arrival: number;
  /** The chunk's `position` when the client gave one, else its arrival order. */
  sequencePosition: number;
  /** From the chunk's arrival to its answer, in milliseconds. */
  latencyMs: number;
  timestamp: Date;
}

/** A chunk's embedding. */
export interface ChunkEmbedding extends ChunkAnswerBase {
  embedding: EncodedEmbedding;
  run: RunInfo;
  tokens: number;
}

/** A chunk that failed alone; the stream goes on. */
export interface ChunkFailure extends ChunkAnswerBase {
  error: EmbedderError;
}

/** The answer to one chunk: its embedding or its error, in completion order. */
export type ChunkAnswer = ChunkEmbedding | ChunkFailure;

/**
 * What one stream may hold at once: chunks received and not yet answered
 * (waiting, in inference, or answered but not yet taken by the transport),
 * and the UTF-8 bytes of their texts until they are answered.
 */
export interface StreamLimits {
  maxPendingChunks: number;
  maxPendingBytes: number;
}

/** 512 chunks and 1 MiB of text per stream (docs/STREAMING.md, "Memory and backpressure"). */
export const DEFAULT_STREAM_LIMITS: StreamLimits = { maxPendingChunks: 512, maxPendingBytes: 1024 * 1024 };

/** One open stream as stats shows it. */
export interface StreamSessionStats {
  id: string;
  /** Chunks taken from the client so far. */
  received: number;
  pendingChunks: number;
  pendingBytes: number;
  /** At a limit: its transport reads nothing from the client until answers are taken. */
  full: boolean;
}

/** Counters that show streams leave nothing behind. */
export interface StreamStats {
  open: number;
  /** Max-latency timers armed now. */
  timers: number;
  /** Flushes the pipeline has not settled yet, closed streams' included. */
  flushesInFlight: number;
  streams: StreamSessionStats[];
}

/**
 * One stream: chunks go in with `add`, answers come out of `answers` in
 * completion order. The stream owns its flushing (by `bufferSize` and
 * `maxLatencyMs`) and its bound (StreamLimits); the transport owns reading:
 * it stops reading from the client while `hasRoom()` is false and resumes when
 * `writable()` resolves, so a client that stops taking answers is stopped too.
 */
export interface StreamSession {
  readonly id: string;
  /** What runs the stream's chunks, as resolved when it opened. */
  readonly run: RunInfo;
  readonly settings: StreamSettings;
  /** False once the stream takes no more chunks: ended, failed, closed, or the server is shutting down. */
  accepting(): boolean;
  /**
   * Takes one chunk and returns its arrival index. An empty text is answered
   * at once with EMPTY_INPUT. A final chunk flushes and ends the stream.
   * Returns -1 and does nothing when the stream is not accepting.
   */
  add(chunk: TextChunk): number;
  /** True while the stream holds less than its limits. */
  hasRoom(): boolean;
  /** What the stream holds now against its limits (for a transport's state report). */
  stats(): StreamSessionStats;
  /** Resolves once the stream has room again or stops accepting. */
  writable(): Promise<void>;
  /** No more chunks: the waiting ones are flushed, and `answers` finishes after the last answer. */
  end(): void;
  /** Ends the stream with a fatal error: waiting chunks are dropped and `answers` throws it after the answers already made. */
  fail(error: unknown): void;
  /** The client is gone: drops waiting chunks and answers, cancels flushes in the pipeline, stops the timer. Idempotent. */
  close(): void;
  /** Answers in completion order; iterate once. Finishes after `end`, throws after `fail`, stops after `close`. */
  readonly answers: AsyncIterable<ChunkAnswer>;
}

/** Opens streams and accounts for them. */
export interface StreamSessions {
  readonly limits: StreamLimits;
  /**
   * Opens a stream once the pipeline has resolved its model, variant and
   * dimensions (a check that runs nothing), so a bad config fails here with
   * its status (UNKNOWN_MODEL, INVALID_DIMENSIONS, ...). SHUTTING_DOWN after
   * `shutdown`.
   */
  open(settings: StreamSettings, requestId: string): Promise<StreamSession>;
  stats(): StreamStats;
  /** Server shutdown: open streams stop taking chunks, answer what they hold, then fail with SHUTTING_DOWN. */
  shutdown(): void;
}

/** Wait a client is told when the server drains. */
const SHUTDOWN_RETRY_AFTER_MS = 1000;

/**
 * Creates the stream registry. Every stream's flushes go through
 * `embedder.embedStream`, so chunks of many streams share the engine's
 * batches with everything else; answers come back per chunk as each batch
 * finishes.
 */
export function createStreamSessions(options: { embedder: Embedder; limits?: Partial<StreamLimits> }): StreamSessions {
  const limits: StreamLimits = { ...DEFAULT_STREAM_LIMITS, ...options.limits };
  const open = new Map<string, StreamSessionEntry>();
  const counters = { timers: 0, flushesInFlight: 0 };
  let shuttingDown = false;
  let sequence = 0;

  const shutdownError = () =>
    new EmbedderError("SHUTTING_DOWN", "the server is shutting down", { retryAfterMs: SHUTDOWN_RETRY_AFTER_MS });

  return {
    limits,
    async open(settings, requestId) {
      if (shuttingDown) throw shutdownError();
      const { run } = await options.embedder.check({ ...settings.request, requestId, texts: [] });
      if (shuttingDown) throw shutdownError();
      sequence += 1;
      const id = `${requestId}#${sequence}`;
      const opened = createStreamSession({
        id,
        requestId,
        run,
        settings,
        limits,
        embedder: options.embedder,
        counters,
        shutdownError,
        onClose: () => open.delete(id),
      });
      open.set(id, opened);
      return opened.session;
    },
    stats() {
      return {
        open: open.size,
        timers: counters.timers,
        flushesInFlight: counters.flushesInFlight,
        streams: [...open.values()].map((entry) => entry.session.stats()),
      };
    },
    shutdown() {
      shuttingDown = true;
      for (const entry of open.values()) entry.shutdown();
    },
  };
}
