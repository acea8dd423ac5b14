import type { ChunkAnswer, StreamSession, TextChunk } from "./create-stream-sessions.js";

/**
 * Runs a stream whose chunks arrive as an async iterable (a gRPC
 * bidirectional stream) and yields its answers. The next chunk is pulled only
 * while the session has room, so a client that stops taking answers soon
 * stops being read, and flow control pushes back on its writes. The chunks
 * ending (the client half-closed) or a final chunk ends the stream after its
 * last answer; a failure while reading chunks (a malformed or oversized
 * message, a dropped connection) fails it. When the consumer stops early or
 * `signal` aborts, the session is closed and nothing stays pending.
 */
export async function* pipeChunks(
  session: StreamSession,
  chunks: AsyncIterable<TextChunk>,
  signal?: AbortSignal,
): AsyncGenerator<ChunkAnswer> {
  const close = () => session.close();
  signal?.addEventListener("abort", close, { once: true });
  void (async () => {
    if (!session.accepting()) return;
    for await (const chunk of chunks) {
      session.add(chunk);
      if (!session.hasRoom()) await session.writable();
      if (!session.accepting()) break;
    }
    session.end();
  })().catch((error: unknown) => session.fail(error));
  try {
    yield* session.answers;
  } finally {
    signal?.removeEventListener("abort", close);
    session.close();
  }
}
