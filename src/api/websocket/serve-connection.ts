import type { JsonObject } from "@bufbuild/protobuf";
import type { WebSocket } from "ws";
import { EmbedderError } from "../../domain/errors.js";
import type { Principal } from "../../domain/types.js";
import type { StreamSession } from "../../streaming/create-stream-sessions.js";
import { logEmbedderError } from "../to-connect-error.js";
import type { WebSocketHandlerOptions } from "./create-websocket-handler.js";
import { createSendQueue } from "./create-send-queue.js";
import {
  answerPayload,
  errorPayload,
  parseClientMessage,
  serverMessage,
  toWebSocketChunk,
  toWebSocketStreamSettings,
  type Envelope,
  type ClientMessageType,
  type ServerMessageType,
} from "./websocket-messages.js";

/** Version of the message protocol of docs/STREAMING.md, told in the handshake. */
export const WEBSOCKET_PROTOCOL_VERSION = 1;

/**
 * How much larger than its ping a pong may be: the envelope fields the server
 * fills in (its timestamp, quotes around a numeric id).
 */
const ENVELOPE_SLACK_BYTES = 128;

/** One served connection, as the handler holds it until it closes. */
export interface WebSocketConnection {
  /** Server shutdown: closes the connection (1001) now when no stream is open or opening, else after the stream's last answer. */
  shutdown(): void;
}

interface OpenStream {
  session: StreamSession;
  /** The `stream_embed` message that opened it; `stream_end` and stream-wide errors answer it. */
  messageId: string;
  /** The id of each `add_chunk` message still unanswered, by the chunk's arrival index. */
  chunkMessageIds: Map<number, string>;
}

/** A message read from the client, or why it could not be read, with its size for the echo check. */
type Received = { message: Envelope<ClientMessageType>; bytes: number } | { error: EmbedderError };

/**
 * Serves one accepted WebSocket connection with the protocol of docs/STREAMING.md for
 * `caller` (see createWebSocketHandler): reads messages into an inbox answered in order,
 * runs at most one stream at a time, pings every `pingIntervalMs`, and stops reading while
 * the stream is full or too much is queued for the client (createSendQueue). `onClose` is
 * told once the socket closes, after the stream was closed and every timer stopped.
 */
export function serveConnection(
  webSocket: WebSocket,
  caller: { requestId: string; principal: Principal | undefined },
  options: WebSocketHandlerOptions,
  onClose: () => void,
): WebSocketConnection {
  const { requestId, principal } = caller;
  let stream: OpenStream | undefined;
  /**
   * Messages read but not answered yet, in order: those that came while a
   * stream was opening, while too much was queued for the client, and chunks
   * for a full stream (what ws had already read when the socket paused).
   * Bounded by what one read of the socket holds.
   */
  const inbox: Received[] = [];
  let opening = false;
  let waitingForRoom = false;
  let answeredPing = true;
  let shuttingDown = false;
  const { isOpen, backedUp, write } = createSendQueue(webSocket, {
    maxBufferedBytes: options.maxBufferedBytes,
    logger: options.logger,
    requestId,
    onRoom: () => drainInbox(),
    onPolicyClose: () => {
      inbox.length = 0;
    },
  });
  const full = () => stream !== undefined && stream.session.accepting() && !stream.session.hasRoom();

  const send = (id: string, type: ServerMessageType, payload: JsonObject): Promise<void> => write(serverMessage(id, type, payload));
  const sendError = (id: string, error: EmbedderError) => {
    logEmbedderError(options.logger, error, { requestId, transport: "websocket" });
    return send(id, "error", errorPayload(error));
  };

  const keepalive = setInterval(() => {
    if (!answeredPing) {
      webSocket.terminate();
      return;
    }
    answeredPing = false;
    webSocket.ping();
  }, options.pingIntervalMs);
  webSocket.on("pong", () => (answeredPing = true));

  /** Stops reading the socket until the stream has room, then goes on with the inbox. */
  const waitForRoom = (session: StreamSession) => {
    webSocket.pause();
    if (waitingForRoom) return;
    waitingForRoom = true;
    void session.writable().then(() => {
      waitingForRoom = false;
      drainInbox();
    });
  };
  /** Answers what was read, in order, while the client takes its answers; reads again once nothing holds the socket. */
  const drainInbox = () => {
    if (!isOpen()) return;
    while (inbox.length > 0 && !opening) {
      if (backedUp()) {
        webSocket.pause();
        return;
      }
      const next = inbox[0];
      if ("message" in next && next.message.type === "add_chunk" && full()) {
        waitForRoom(stream!.session);
        return;
      }
      inbox.shift();
      if ("error" in next) {
        replyError(undefined, next.error);
        continue;
      }
      try {
        handle(next.message, next.bytes);
      } catch (reason) {
        replyError(next.message, EmbedderError.from(reason));
      }
    }
    if (isOpen() && !opening && !full() && !backedUp()) webSocket.resume();
  };
  const replyError = (message: Envelope<ClientMessageType> | undefined, error: EmbedderError) => {
    const chunkId = message?.type === "add_chunk" ? message.payload.chunk_id : undefined;
    void send(message?.id ?? "", "error", typeof chunkId === "string" ? { ...errorPayload(error), chunk_id: chunkId } : errorPayload(error));
  };

  const pump = async (opened: OpenStream) => {
    const { session } = opened;
    try {
      for await (const answer of session.answers) {
        const id = opened.chunkMessageIds.get(answer.arrival) ?? "";
        opened.chunkMessageIds.delete(answer.arrival);
        const { type, payload } = answerPayload(answer);
        await send(id, type, payload);
      }
      await send(opened.messageId, "stream_end", { stream_id: session.id });
    } catch (reason) {
      await sendError(opened.messageId, EmbedderError.from(reason));
    } finally {
      session.close();
      if (stream === opened) stream = undefined;
      if (shuttingDown) webSocket.close(1001, "server shutting down");
      else drainInbox();
    }
  };

  const openStream = async (message: Envelope<ClientMessageType>) => {
    opening = true;
    webSocket.pause();
    try {
      const asked = toWebSocketStreamSettings(message.payload, requestId);
      const session = await options.streams.open({ ...asked, request: { ...asked.request, principal } }, requestId);
      const opened: OpenStream = { session, messageId: message.id, chunkMessageIds: new Map() };
      stream = opened;
      await send(message.id, "stream_started", {
        stream_id: session.id,
        model_used: session.run.modelId,
        dimensions: session.run.dimensions,
        buffer_size: session.settings.bufferSize,
        max_latency_ms: session.settings.maxLatencyMs,
      });
      void pump(opened);
    } catch (reason) {
      await sendError(message.id, EmbedderError.from(reason));
    } finally {
      opening = false;
      drainInbox();
    }
  };

  /** Answers one message; `bytes` is its size as read, which its pong may not exceed. */
  const handle = (message: Envelope<ClientMessageType>, bytes: number) => {
    switch (message.type) {
      case "handshake":
        void send(message.id, "handshake", {
          protocol_version: WEBSOCKET_PROTOCOL_VERSION,
          session_id: requestId,
          max_message_bytes: options.maxMessageBytes,
          max_pending_chunks: options.streams.limits.maxPendingChunks,
          max_pending_bytes: options.streams.limits.maxPendingBytes,
          ping_interval_ms: options.pingIntervalMs,
        });
        return;
      case "ping": {
        const pong = serverMessage(message.id, "pong", message.payload);
        const pongBytes = Buffer.byteLength(pong);
        if (pongBytes > bytes + ENVELOPE_SLACK_BYTES) {
          void sendError(message.id, new EmbedderError("INVALID_ARGUMENT", `the ping's payload would be echoed in ${pongBytes} bytes, more than the ${bytes} it came in (numbers are written out in full): send it as a string`, {
            details: { field: "payload", bytes, echo_bytes: pongBytes },
          }));
          return;
        }
        void write(pong);
        return;
      }
      case "stream_embed":
        if (stream !== undefined) {
          void sendError(message.id, new EmbedderError("INVALID_ARGUMENT", "a stream is already open on this connection; end it first"));
          return;
        }
        if (shuttingDown) {
          void sendError(message.id, new EmbedderError("SHUTTING_DOWN", "the server is shutting down", { retryAfterMs: 1000 }));
          return;
        }
        void openStream(message);
        return;
      case "add_chunk": {
        if (stream === undefined || !stream.session.accepting()) {
          void sendError(message.id, new EmbedderError("INVALID_ARGUMENT", "no open stream takes chunks: send stream_embed first"));
          return;
        }
        const chunk = toWebSocketChunk(message.payload);
        const arrival = stream.session.add(chunk);
        stream.chunkMessageIds.set(arrival, message.id);
        if (full()) waitForRoom(stream.session);
        return;
      }
      case "end_stream":
        stream?.session.end();
        return;
    }
  };

  webSocket.on("message", (data, isBinary) => {
    if (!isOpen()) return;
    try {
      if (isBinary) throw new EmbedderError("INVALID_ARGUMENT", "messages are JSON text frames");
      const text = data.toString();
      inbox.push({ message: parseClientMessage(text), bytes: Buffer.byteLength(text) });
    } catch (reason) {
      inbox.push({ error: EmbedderError.from(reason) });
    }
    drainInbox();
  });
  webSocket.on("error", (error) => options.logger.debug({ err: error, requestId }, "websocket error"));
  webSocket.once("close", () => {
    clearInterval(keepalive);
    inbox.length = 0;
    stream?.session.close();
    stream = undefined;
    onClose();
  });

  return {
    shutdown() {
      shuttingDown = true;
      if (stream === undefined && !opening) webSocket.close(1001, "server shutting down");
    },
  };
}
