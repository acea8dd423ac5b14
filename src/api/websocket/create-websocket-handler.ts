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

/** The WebSocket routes (docs/STREAMING.md): the route and its seed-API twin. */
export const WEBSOCKET_PATHS: readonly string[] = ["/v1/embeddings/ws", "/api/v1/embeddings/ws"];

/** Version of the message protocol of docs/STREAMING.md, told in the handshake. */
export const WEBSOCKET_PROTOCOL_VERSION = 1;

/** Bytes queued for a client beyond which a stream's next answer waits for them to be written. */
const SEND_HIGH_WATER_BYTES = 64 * 1024;

/** How long a connection closed with 1008 has to take its close frame before its socket is cut. */
const POLICY_CLOSE_GRACE_MS = 10_000;

/**
 * How much larger than its ping a pong may be: the envelope fields the server
 * fills in (its timestamp, quotes around a numeric id).
 */
const ENVELOPE_SLACK_BYTES = 128;

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
  /**
   * Bytes queued for one client (written by the server, not yet taken by its
   * socket) beyond which the server stops reading that client until they drain;
   * past twice this the connection is closed with 1008 (`SUTRA_WS_MAX_BUFFERED_BYTES`).
   */
  maxBufferedBytes: number;
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
 * client); stream answers wait while more than 64 KiB are queued for the
 * client; and while more than `maxBufferedBytes` are queued (answers of any
 * kind: handshake, pong, error, embedding, and ws's own pong frames) the
 * socket is not read and read messages wait unanswered, so what a client that
 * stops reading makes the server hold is bounded. Past twice that it is closed
 * with 1008 and cut POLICY_CLOSE_GRACE_MS later. A pong is never larger than
 * its ping (plus the envelope), so echoing cannot amplify a message.
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

/** A message read from the client, or why it could not be read, with its size for the echo check. */
type Received = { message: Envelope<ClientMessageType>; bytes: number } | { error: EmbedderError };

function serveConnection(
  webSocket: WebSocket,
  caller: { requestId: string; principal: Principal | undefined },
  options: WebSocketHandlerOptions,
  onClose: () => void,
): Connection {
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
  let cutTimer: NodeJS.Timeout | undefined;
  const streamHighWater = Math.min(SEND_HIGH_WATER_BYTES, options.maxBufferedBytes);

  const isOpen = () => webSocket.readyState === WebSocket.OPEN;
  /** More than the bound is queued for the client: nothing more is read or answered until it drains. */
  const backedUp = () => webSocket.bufferedAmount > options.maxBufferedBytes;
  const full = () => stream !== undefined && stream.session.accepting() && !stream.session.hasRoom();

  /** Closes a client that lets more than twice the bound pile up (1008), and cuts it if it does not take the close frame. */
  const closeForPolicy = () => {
    if (!isOpen()) return;
    options.logger.warn({ requestId, bufferedBytes: webSocket.bufferedAmount, transport: "websocket" }, "websocket client is not reading its answers; closing it (1008)");
    inbox.length = 0;
    webSocket.pause();
    webSocket.close(1008, "too much queued for this client: it does not read its answers");
    cutTimer = setTimeout(() => webSocket.terminate(), POLICY_CLOSE_GRACE_MS);
  };
  /** After anything was queued for the client: past twice the bound it is closed, past the bound reading stops. */
  const checkQueued = () => {
    if (webSocket.bufferedAmount > 2 * options.maxBufferedBytes) closeForPolicy();
    else if (backedUp()) webSocket.pause();
  };

  /** Queues a serialised message; resolves once it is written, or at once while little is queued. */
  const write = (text: string): Promise<void> =>
    new Promise((resolve) => {
      if (!isOpen()) {
        resolve();
        return;
      }
      webSocket.send(text, () => {
        resolve();
        if (!backedUp()) drainInbox();
      });
      if (webSocket.bufferedAmount <= streamHighWater) resolve();
      checkQueued();
    });
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
  // ws answers ping frames itself; those pongs are queued for the client too.
  webSocket.on("ping", checkQueued);

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
    clearTimeout(cutTimer);
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
