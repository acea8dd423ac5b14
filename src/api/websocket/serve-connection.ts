import type { JsonObject } from "@bufbuild/protobuf";
import type { WebSocket } from "ws";
import { EmbedderError } from "../../domain/errors.js";
import type { Principal } from "../../domain/types.js";
import type { StreamSession } from "../../streaming/create-stream-sessions.js";
import { logEmbedderError } from "../to-connect-error.js";
import type { WebSocketHandlerOptions } from "./create-websocket-handler.js";
import { createConnectionState } from "./create-connection-state.js";
import { createKeepalive } from "./create-keepalive.js";
import { createSendQueue } from "./create-send-queue.js";
import {
  answerPayload,
  errorPayload,
  objectField,
  parseClientMessage,
  serverMessage,
  sessionIdField,
  stringField,
  toWebSocketChunk,
  toWebSocketStreamSettings,
  type ClientMessage,
  type ServerMessageType,
} from "./websocket-messages.js";

/** Version of the message protocol of docs/STREAMING.md, told in the handshake. */
export const WEBSOCKET_PROTOCOL_VERSION = "1.0";

/** How long a connection that must authenticate in its handshake may stay open without doing so. */
const AUTHENTICATION_DEADLINE_MS = 10_000;

/** Who is on a connection, as its upgrade told. */
export interface WebSocketCaller {
  requestId: string;
  /** The caller the upgrade's credentials named (undefined with authentication off, or until the handshake authenticates). */
  principal: Principal | undefined;
  /** Set when the connection must authenticate in its handshake: checks the handshake's `token` with the access control. */
  authenticate?: (token: string | undefined) => Promise<Principal | undefined>;
}

/** One served connection, as the handler holds it until it closes. */
export interface WebSocketConnection {
  /** Server shutdown: closes the connection (1001) now when no stream is open or opening, else after the stream's last answer. */
  shutdown(): void;
}

interface OpenStream {
  session: StreamSession;
  /** The `stream_embed` request that opened it; `stream_end` and stream-wide errors answer it. */
  messageId: string;
  sessionId: string;
  /** The id of each `add_chunk` request still unanswered, by the chunk's arrival index. */
  chunkMessageIds: Map<number, string>;
  /** Chunks answered so far (embedding or error). */
  answered: number;
}

/** A request read from the client, or a message that cannot be served. */
type Received = Exclude<ClientMessage, { type: "pong" }>;
type ClientRequest = Extract<ClientMessage, { type: "request" }>;

/**
 * Serves one accepted WebSocket connection with the protocol of docs/STREAMING.md for
 * `caller` (see createWebSocketHandler): reads requests into an inbox answered in order,
 * runs at most one stream at a time, pings every `pingIntervalMs`, and stops reading while
 * the stream is full, an authentication or a stream is opening, or too much is queued for
 * the client (createSendQueue). A connection that must authenticate in its handshake is
 * closed (1008) after an UNAUTHENTICATED error on any other first request, on a refused
 * token, or after AUTHENTICATION_DEADLINE_MS. `onClose` is told once the socket closes,
 * after the stream was closed and every timer stopped.
 */
export function serveConnection(webSocket: WebSocket, caller: WebSocketCaller, options: WebSocketHandlerOptions, onClose: () => void): WebSocketConnection {
  const { requestId } = caller;
  let principal = caller.principal;
  let authenticated = caller.authenticate === undefined;
  let stream: OpenStream | undefined;
  /**
   * Requests read but not answered yet, in order: those that came while an
   * authentication or a stream was opening, while too much was queued for the
   * client, and chunks for a full stream (what ws had already read when the
   * socket paused). Bounded by what one read of the socket holds.
   */
  const inbox: Received[] = [];
  let busy = false;
  let waitingForRoom = false;
  let shuttingDown = false;
  const state = createConnectionState(requestId, options.streams.limits);
  const { isOpen, backedUp, write, closeForPolicy } = createSendQueue(webSocket, {
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
  const respond = (id: string, action: string, payload: JsonObject) => send(id, "response", { action, ...payload });
  const sendError = (id: string, error: EmbedderError, chunkId?: string) => {
    logEmbedderError(options.logger, error, { requestId, transport: "websocket" });
    return send(id, "error", errorPayload(error, chunkId));
  };
  const refuseCaller = (id: string, error: EmbedderError) => {
    void sendError(id, error);
    closeForPolicy("the connection did not authenticate");
  };

  const keepalive = createKeepalive({
    intervalMs: options.pingIntervalMs,
    ping: (id) => void send(id, "ping", {}),
    onSilent: () => closeForPolicy("two pings went unanswered"),
  });
  const authenticationDeadline = authenticated
    ? undefined
    : setTimeout(() => closeForPolicy("no handshake authenticated the connection in time"), AUTHENTICATION_DEADLINE_MS);

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
    while (inbox.length > 0 && !busy) {
      if (backedUp()) {
        webSocket.pause();
        return;
      }
      const next = inbox[0];
      if (next.type === "request" && next.action === "add_chunk" && full()) {
        waitForRoom(stream!.session);
        return;
      }
      inbox.shift();
      if (next.type === "invalid") {
        void sendError(next.id, next.error);
        continue;
      }
      try {
        handle(next);
      } catch (reason) {
        const chunkId = next.action === "add_chunk" ? stringField(next.payload, "chunk_id") : undefined;
        void sendError(next.id, EmbedderError.from(reason), chunkId);
      }
    }
    if (isOpen() && !busy && !full() && !backedUp()) webSocket.resume();
  };
  /** Runs an async step (authentication, opening a stream) while the inbox waits, then goes on with it. */
  const waitFor = async (step: () => Promise<void>) => {
    busy = true;
    webSocket.pause();
    try {
      await step();
    } finally {
      busy = false;
      if (shuttingDown && stream === undefined) webSocket.close(1001, "server shutting down");
      else drainInbox();
    }
  };

  const pump = async (opened: OpenStream) => {
    const { session } = opened;
    try {
      for await (const answer of session.answers) {
        const id = opened.chunkMessageIds.get(answer.arrival) ?? "";
        opened.chunkMessageIds.delete(answer.arrival);
        opened.answered += 1;
        state.answered(answer.latencyMs);
        const { type, payload } = answerPayload(answer);
        await send(id, type, payload);
      }
      await respond(opened.messageId, "stream_end", { session_id: opened.sessionId, stream_id: session.id, chunks_processed: opened.answered });
    } catch (reason) {
      await sendError(opened.messageId, EmbedderError.from(reason));
    } finally {
      session.close();
      if (stream === opened) stream = undefined;
      if (shuttingDown) webSocket.close(1001, "server shutting down");
      else drainInbox();
    }
  };

  const openStream = async (message: ClientRequest) => {
    try {
      const asked = toWebSocketStreamSettings(message.payload, requestId);
      const sessionId = sessionIdField(objectField(message.payload, "metadata")) ?? state.sessionId;
      const session = await options.streams.open({ ...asked, request: { ...asked.request, principal } }, requestId);
      const opened: OpenStream = { session, messageId: message.id, sessionId, chunkMessageIds: new Map(), answered: 0 };
      stream = opened;
      await respond(message.id, "stream_embed", {
        session_id: sessionId,
        stream_id: session.id,
        model_used: session.run.modelId,
        dimensions: session.run.dimensions,
        buffer_size: session.settings.bufferSize,
        max_latency_ms: session.settings.maxLatencyMs,
      });
      void pump(opened);
    } catch (reason) {
      await sendError(message.id, EmbedderError.from(reason));
    }
  };

  const answerHandshake = (message: ClientRequest, sessionId: string | undefined) => {
    state.sessionId = sessionId ?? state.sessionId;
    void respond(message.id, "handshake", {
      session_id: state.sessionId,
      protocol_version: WEBSOCKET_PROTOCOL_VERSION,
      max_message_bytes: options.maxMessageBytes,
      max_pending_chunks: options.streams.limits.maxPendingChunks,
      max_pending_bytes: options.streams.limits.maxPendingBytes,
      ping_interval_ms: options.pingIntervalMs,
    });
  };
  const authenticate = async (message: ClientRequest, sessionId: string | undefined) => {
    try {
      principal = await caller.authenticate!(stringField(message.payload, "token"));
      authenticated = true;
      clearTimeout(authenticationDeadline);
      answerHandshake(message, sessionId);
    } catch (reason) {
      refuseCaller(message.id, EmbedderError.from(reason));
    }
  };

  /** Answers one request. */
  const handle = (message: ClientRequest) => {
    if (!authenticated && message.action !== "handshake") {
      refuseCaller(message.id, new EmbedderError("UNAUTHENTICATED", "authenticate first: send a handshake request whose payload carries the token"));
      return;
    }
    switch (message.action) {
      case "handshake": {
        const sessionId = sessionIdField(message.payload);
        if (authenticated) answerHandshake(message, sessionId);
        else void waitFor(() => authenticate(message, sessionId));
        return;
      }
      case "get_state":
        void respond(message.id, "state", state.toPayload(stream?.session));
        return;
      case "stream_embed":
        if (stream !== undefined) throw new EmbedderError("INVALID_ARGUMENT", "a stream is already open on this connection; end it with a final chunk first");
        if (shuttingDown) throw new EmbedderError("SHUTTING_DOWN", "the server is shutting down", { retryAfterMs: 1000 });
        void waitFor(() => openStream(message));
        return;
      case "add_chunk": {
        if (stream === undefined || !stream.session.accepting()) {
          throw new EmbedderError("INVALID_ARGUMENT", "no open stream takes chunks: send stream_embed first");
        }
        const arrival = stream.session.add(toWebSocketChunk(message.payload));
        stream.chunkMessageIds.set(arrival, message.id);
        if (full()) waitForRoom(stream.session);
        return;
      }
    }
  };

  webSocket.on("message", (data, isBinary) => {
    if (!isOpen()) return;
    state.touch();
    const message = isBinary
      ? { id: "", type: "invalid" as const, error: new EmbedderError("INVALID_ARGUMENT", "messages are JSON text frames") }
      : parseClientMessage(data.toString());
    if (message.type === "pong") keepalive.answered(message.payload.ping_id);
    else inbox.push(message);
    drainInbox();
  });
  webSocket.on("error", (error) => options.logger.debug({ err: error, requestId }, "websocket error"));
  webSocket.once("close", () => {
    keepalive.stop();
    clearTimeout(authenticationDeadline);
    inbox.length = 0;
    stream?.session.close();
    stream = undefined;
    onClose();
  });

  return {
    shutdown() {
      shuttingDown = true;
      if (stream === undefined && !busy) webSocket.close(1001, "server shutting down");
    },
  };
}
