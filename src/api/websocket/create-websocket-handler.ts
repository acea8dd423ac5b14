import { STATUS_CODES, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { JsonObject } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { WebSocket, WebSocketServer } from "ws";
import type { AccessControl } from "../../admission/access-control.js";
import { EmbedderError } from "../../domain/errors.js";
import type { Principal } from "../../domain/types.js";
import type { StreamSession, StreamSessions } from "../../streaming/create-stream-sessions.js";
import { ERROR_TABLE, retryAfterSeconds } from "../error-table.js";
import { REQUEST_ID_HEADER, resolveRequestId } from "../request-context.js";
import { restErrorEnvelope } from "../rest/write-rest-error.js";
import { logEmbedderError } from "../to-connect-error.js";
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

/** The WebSocket routes (DESIGN section 4): the route and its seed-API twin. */
export const WEBSOCKET_PATHS: readonly string[] = ["/v1/embeddings/ws", "/api/v1/embeddings/ws"];

/** Version of the message protocol of docs/STREAMING.md, told in the handshake. */
export const WEBSOCKET_PROTOCOL_VERSION = 1;

/** Bytes queued for a client beyond which the server waits for them to be written before sending more. */
const SEND_HIGH_WATER_BYTES = 64 * 1024;

/** What the WebSocket side needs. */
export interface WebSocketHandlerOptions {
  streams: StreamSessions;
  /** Authentication and request rate, checked on the upgrade request (an authenticated caller may stream). */
  access: AccessControl;
  logger: Logger;
  /** Largest message a client may send, in bytes (`SUTRA_MAX_BODY_BYTES`); a larger one closes the connection with 1009. */
  maxMessageBytes: number;
  /** How often the server pings; a connection that has not answered the previous ping by then is dropped. */
  pingIntervalMs: number;
}

/** The WebSocket side of the server. */
export interface WebSocketHandler {
  /**
   * Takes an HTTP/1.1 upgrade request: a WebSocket route whose caller the
   * access check admits becomes a connection speaking the protocol of
   * docs/STREAMING.md; any other path is answered 404 (ROUTE_NOT_FOUND), a
   * refused caller with the access check's status (401, 403, 429), in the
   * REST error envelope, and the socket closed.
   */
  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Server shutdown: new upgrades get 503, idle connections close (1001), streaming ones after their last answer. */
  close(): void;
}

/** True when an HTTP request line's target is a WebSocket route (for routing a connection before it is parsed). */
export function isWebSocketTarget(target: string): boolean {
  return WEBSOCKET_PATHS.includes(target.split("?", 1)[0]);
}

/**
 * Creates the WebSocket handler (the `ws` library, no server of its own: the
 * HTTP server hands it upgrade requests). Per connection: one stream at a
 * time (`stream_embed`, then `add_chunk` messages, answered by `embedding` or
 * `error` messages carrying the id of the `add_chunk` they answer, then
 * `stream_end`), `handshake` and `ping`/`pong` at any time, and protocol-level
 * pings every `pingIntervalMs` for keepalive. Backpressure both ways: while
 * the stream session is full the socket is not read (TCP pushes back on the
 * client), and answers wait while more than 64 KiB are queued for the client.
 */
export function createWebSocketHandler(options: WebSocketHandlerOptions): WebSocketHandler {
  const server = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes, clientTracking: false });
  const requestIds = new WeakMap<IncomingMessage, string>();
  const open = new Set<Connection>();
  let closing = false;
  server.on("headers", (headers, request) => headers.push(`${REQUEST_ID_HEADER}: ${requestIds.get(request) ?? ""}`));

  return {
    upgrade(request, socket, head) {
      const requestId = resolveRequestId(request.headers[REQUEST_ID_HEADER]);
      const path = (request.url ?? "/").split("?", 1)[0];
      socket.on("error", () => socket.destroy());
      if (!WEBSOCKET_PATHS.includes(path) || closing) {
        const error = closing
          ? new EmbedderError("SHUTTING_DOWN", "the server is shutting down", { retryAfterMs: 1000 })
          : new EmbedderError("ROUTE_NOT_FOUND", `no WebSocket route at ${path}`, { details: { method: "GET", path } });
        refuse(socket, error, requestId);
        return;
      }
      options.access.admit(request.headers, "user").then(
        (principal) => {
          requestIds.set(request, requestId);
          server.handleUpgrade(request, socket, head, (webSocket) => {
            const connection = serveConnection(webSocket, { requestId, principal }, options, () => open.delete(connection));
            open.add(connection);
            if (closing) connection.shutdown();
          });
        },
        (reason: unknown) => {
          const error = EmbedderError.from(reason);
          logEmbedderError(options.logger, error, { requestId, transport: "websocket" });
          refuse(socket, error, requestId);
        },
      );
    },
    close() {
      closing = true;
      for (const connection of open) connection.shutdown();
    },
  };
}

interface Connection {
  shutdown(): void;
}

interface OpenStream {
  session: StreamSession;
  /** The `stream_embed` message that opened it; `stream_end` and stream-wide errors answer it. */
  messageId: string;
  /** The id of each `add_chunk` message still unanswered, by the chunk's arrival index. */
  chunkMessageIds: Map<number, string>;
}

function serveConnection(
  webSocket: WebSocket,
  caller: { requestId: string; principal: Principal | undefined },
  options: WebSocketHandlerOptions,
  onClose: () => void,
): Connection {
  const { requestId, principal } = caller;
  let stream: OpenStream | undefined;
  /**
   * Messages read but not handled yet, in order: those that came while a
   * stream was opening, and chunks for a full stream (what ws had already read
   * when the socket paused). Bounded by what one read of the socket holds.
   */
  const inbox: Envelope<ClientMessageType>[] = [];
  let opening = false;
  let waitingForRoom = false;
  let answeredPing = true;
  let shuttingDown = false;

  const send = (id: string, type: ServerMessageType, payload: JsonObject): Promise<void> =>
    new Promise((resolve) => {
      if (webSocket.readyState !== WebSocket.OPEN) {
        resolve();
        return;
      }
      webSocket.send(serverMessage(id, type, payload), () => resolve());
      if (webSocket.bufferedAmount <= SEND_HIGH_WATER_BYTES) resolve();
    });
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

  const full = () => stream !== undefined && stream.session.accepting() && !stream.session.hasRoom();
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
  const drainInbox = () => {
    while (inbox.length > 0 && !opening) {
      if (inbox[0].type === "add_chunk" && full()) {
        waitForRoom(stream!.session);
        return;
      }
      const message = inbox.shift()!;
      try {
        handle(message);
      } catch (reason) {
        replyError(message, EmbedderError.from(reason));
      }
    }
    if (!opening && !full()) webSocket.resume();
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

  const handle = (message: Envelope<ClientMessageType>) => {
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
      case "ping":
        void send(message.id, "pong", message.payload);
        return;
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
    try {
      if (isBinary) throw new EmbedderError("INVALID_ARGUMENT", "messages are JSON text frames");
      inbox.push(parseClientMessage(data.toString()));
    } catch (reason) {
      replyError(undefined, EmbedderError.from(reason));
      return;
    }
    drainInbox();
  });
  webSocket.on("error", (error) => options.logger.debug({ err: error, requestId }, "websocket error"));
  webSocket.once("close", () => {
    clearInterval(keepalive);
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

/** Answers a refused upgrade with the REST error envelope and closes the socket. */
function refuse(socket: Duplex, error: EmbedderError, requestId: string): void {
  const body = JSON.stringify(restErrorEnvelope(error, requestId));
  const status = ERROR_TABLE[error.reason].httpStatus;
  const retryAfter = retryAfterSeconds(error);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n` +
      (retryAfter === undefined ? "" : `retry-after: ${retryAfter}\r\n`) +
      `connection: close\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `${REQUEST_ID_HEADER}: ${requestId}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
