import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { WebSocketServer } from "ws";
import type { AccessControl } from "../../admission/access-control.js";
import { EmbedderError } from "../../domain/errors.js";
import type { StreamSessions } from "../../streaming/create-stream-sessions.js";
import { REQUEST_ID_HEADER, resolveRequestId } from "../request-context.js";
import { logEmbedderError } from "../to-connect-error.js";
import { credentialHeaders, offeredSubprotocols, presentsCredentials, SUTRA_SUBPROTOCOL } from "./credential-headers.js";
import { refuseUpgrade } from "./refuse-upgrade.js";
import { serveConnection, type WebSocketConnection } from "./serve-connection.js";

export { WEBSOCKET_PROTOCOL_VERSION } from "./serve-connection.js";

/** The WebSocket routes (docs/STREAMING.md): the route and its seed-API twin. */
export const WEBSOCKET_PATHS: readonly string[] = ["/v1/embeddings/ws", "/api/v1/embeddings/ws"];

/** What the WebSocket side needs. */
export interface WebSocketHandlerOptions {
  streams: StreamSessions;
  /**
   * Authentication and request rate, checked on the upgrade request (headers, or a
   * `bearer.<token>` subprotocol) or, for a `sutra.v1` upgrade without credentials, on
   * its handshake's `token`; an authenticated caller may stream.
   */
  access: AccessControl;
  logger: Logger;
  /** Largest message a client may send, in bytes (`SUTRA_MAX_BODY_BYTES`); a larger one closes the connection with 1009. */
  maxMessageBytes: number;
  /** How often the server sends a `ping` message; a connection that left two unanswered is closed (1008) at the next. */
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
   * docs/STREAMING.md (selecting the `sutra.v1` subprotocol when offered); any
   * other path is answered 404 (ROUTE_NOT_FOUND), a refused caller with the
   * access check's status (401, 403, 429), in the REST error envelope, and the
   * socket closed. With authentication on, an upgrade that offers `sutra.v1`
   * and carries no credential is accepted and must authenticate in its
   * handshake before anything else.
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
 * HTTP server hands it upgrade requests). Per connection, in the envelope
 * `{id, type, timestamp, payload}`: one stream at a time (`request`s with
 * action `stream_embed`, then `add_chunk`, answered by `response` or `error`
 * messages carrying the id of the request they answer, then a `stream_end`
 * response), `handshake` and `get_state` at any time, and a `ping` message
 * every `pingIntervalMs` that the client answers with a `pong`. Backpressure both ways: while
 * the stream session is full the socket is not read (TCP pushes back on the
 * client); stream answers wait while more than 64 KiB are queued for the
 * client; and while more than `maxBufferedBytes` are queued (answers of any
 * kind, pings, and ws's own pong frames) the socket is not read and read
 * messages wait unanswered, so what a client that stops reading makes the
 * server hold is bounded. Past twice that it is closed with 1008 and cut
 * POLICY_CLOSE_GRACE_MS later. No answer repeats more of its message than its
 * id and session id, so answering cannot amplify a message.
 */
export function createWebSocketHandler(options: WebSocketHandlerOptions): WebSocketHandler {
  const server = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxMessageBytes,
    clientTracking: false,
    handleProtocols: (offered) => (offered.has(SUTRA_SUBPROTOCOL) ? SUTRA_SUBPROTOCOL : false),
  });
  const requestIds = new WeakMap<IncomingMessage, string>();
  const open = new Set<WebSocketConnection>();
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
        refuseUpgrade(socket, error, requestId);
        return;
      }
      const headers = credentialHeaders(request.headers);
      const authenticateInHandshake =
        options.access.authenticator.mode !== "none" && !presentsCredentials(headers) && offeredSubprotocols(headers).includes(SUTRA_SUBPROTOCOL);
      const authenticate = (token: string | undefined) => options.access.admit(token === undefined ? {} : { authorization: `Bearer ${token}` }, "user");
      (authenticateInHandshake ? Promise.resolve(undefined) : options.access.admit(headers, "user")).then(
        (principal) => {
          requestIds.set(request, requestId);
          server.handleUpgrade(request, socket, head, (webSocket) => {
            const caller = { requestId, principal, authenticate: authenticateInHandshake ? authenticate : undefined };
            const connection = serveConnection(webSocket, caller, options, () => open.delete(connection));
            open.add(connection);
            if (closing) connection.shutdown();
          });
        },
        (reason: unknown) => {
          const error = EmbedderError.from(reason);
          logEmbedderError(options.logger, error, { requestId, transport: "websocket" });
          refuseUpgrade(socket, error, requestId);
        },
      );
    },
    close() {
      closing = true;
      for (const connection of open) connection.shutdown();
    },
  };
}
