import type { JsonObject } from "@bufbuild/protobuf";
import type { StreamLimits, StreamSession } from "../../streaming/create-stream-sessions.js";

/** What one connection has done, as `get_state` reports it. */
export interface ConnectionState {
  /** The session id: the client's from its handshake, else the upgrade's request id. */
  sessionId: string;
  /** A message came from the client now. */
  touch(): void;
  /** One chunk was answered (embedding or error) `latencyMs` after it arrived. */
  answered(latencyMs: number): void;
  /**
   * The `state` payload: {session_id, is_streaming (a stream is open), buffer_utilization (the
   * larger share of the stream's pending-chunk and pending-byte limits in
   * use, 0..1; 0 without a stream), chunks_processed and average_latency_ms
   * (chunks answered on this connection, every stream), last_activity (RFC 3339)}.
   */
  toPayload(stream: StreamSession | undefined): JsonObject;
}

/** Creates the state of a connection whose session id starts as `sessionId`, measured against `limits`. */
export function createConnectionState(sessionId: string, limits: StreamLimits): ConnectionState {
  let chunksProcessed = 0;
  let totalLatencyMs = 0;
  let lastActivity = new Date();
  return {
    sessionId,
    touch: () => (lastActivity = new Date()),
    answered(latencyMs) {
      chunksProcessed += 1;
      totalLatencyMs += latencyMs;
    },
    toPayload(stream) {
      const held = stream?.stats();
      return {
        session_id: this.sessionId,
        is_streaming: held !== undefined,
        buffer_utilization: held === undefined ? 0 : Math.min(1, Math.max(held.pendingChunks / limits.maxPendingChunks, held.pendingBytes / limits.maxPendingBytes)),
        chunks_processed: chunksProcessed,
        average_latency_ms: chunksProcessed === 0 ? 0 : totalLatencyMs / chunksProcessed,
        last_activity: lastActivity.toISOString(),
      };
    },
  };
}
