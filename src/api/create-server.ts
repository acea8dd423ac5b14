import http from "node:http";
import http2 from "node:http2";
import type { Http2Session } from "node:http2";
import net from "node:net";
import type tls from "node:tls";
import type { Logger } from "pino";
import { createAccessControl, type AccessControl } from "../admission/access-control.js";
import { createRateLimiter } from "../admission/rate-limit.js";
import { createAuthenticator } from "../auth/create-authenticator.js";
import type { JobService } from "../domain/jobs.js";
import type { Embedder } from "../domain/types.js";
import { createFailureCounter, type FailureCounter } from "../observability/count-failure.js";
import { createMetrics, registerConnectionGauges, type Metrics } from "../observability/metrics.js";
import { createStreamSessions, type StreamSessions } from "../streaming/create-stream-sessions.js";
import { createOriginGuard, guardUpgrades } from "./check-request-origin.js";
import { createCorsHandler } from "./create-cors-handler.js";
import { createRequestListener } from "./create-request-listener.js";
import { createHttp1Drain } from "./drain-http1-connections.js";
import type { ProviderAdmin } from "./provider-routes.js";
import type { NodeRequestListener } from "./node-types.js";
import { handOver } from "./hand-over-connection.js";
import { createWatchLimits } from "./watch-limits.js";
import { awaitClientSettings, createConnectionLimiter, HTTP1_HEAD_TIMEOUTS, OPENING_DEADLINE_MS } from "./limit-connections.js";
import { createWebSocketHandler } from "./websocket/create-websocket-handler.js";

/** What the transport layer needs from the rest of the service. */
export interface ServerDeps {
  /** The front door: the one seam every transport calls. */
  embedder: Embedder;
  logger: Logger;
  limits: {
    /** Largest request body (REST, Connect unary) or message (gRPC, gRPC-Web, streams), in bytes (`SUTRA_MAX_BODY_BYTES`). */
    maxBodyBytes: number;
  };
  /** PEM certificate and key; when given, the port speaks TLS only, with ALPN h2 and http/1.1. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** How often grpc.health.v1 Watch streams look for a state change, in ms (default 1000). */
  healthPollMs?: number;
  /** Authentication, roles and rate limits on every transport (default: auth none, no limits). */
  access?: AccessControl;
  /** The service's metrics, served at `/metrics` (default: a fresh registry). */
  metrics?: Metrics;
  /** The failure counter the front door counts with, so that a refusal is counted once whoever answers it (default: one over `metrics`). */
  failures?: FailureCounter;
  /** Streams of StreamEmbeddings and the WebSocket route (default: a registry over `embedder`). */
  streams?: StreamSessions;
  /** Upstream providers' breakers and configuration, for the admin routes (absent: none configured). */
  providers?: ProviderAdmin;
  /** Document jobs (docs/JOBS.md); absent = the job rpcs answer NOT_IMPLEMENTED. */
  jobs?: JobService;
  /** Bounds on what one connection or client may hold open (docs/SECURITY.md); `sutra serve` declares their defaults. */
  connectionLimits: ConnectionLimits;
  /** Which Host names and browser origins are served (docs/SECURITY.md); default: loopback names (checked when auth is none), same origin only. */
  origins?: Partial<OriginPolicy>;
}

/** Bounds on what one connection or client may hold open. */
export interface ConnectionLimits {
  /** Concurrent streams one HTTP/2 connection may open, sent in SETTINGS (`SUTRA_MAX_STREAMS_PER_CONNECTION`). */
  maxStreamsPerConnection: number;
  /** Open grpc.health.v1 Watch streams in all (`SUTRA_MAX_WATCH_STREAMS`); beyond: TOO_MANY_STREAMS. */
  maxWatchStreams: number;
  /** Open grpc.health.v1 Watch streams per connection (`SUTRA_MAX_WATCH_STREAMS_PER_CONNECTION`); beyond: TOO_MANY_STREAMS. */
  maxWatchStreamsPerConnection: number;
  /** Open connections per client address; 0 = no cap (`SUTRA_MAX_CONNECTIONS_PER_ADDRESS`). */
  maxConnectionsPerAddress: number;
  /** Bytes queued for one WebSocket client before the server stops reading it; twice that closes it with 1008 (`SUTRA_WS_MAX_BUFFERED_BYTES`). */
  webSocketMaxBufferedBytes: number;
  /** Time between the server's pings on a WebSocket connection, in ms; two unanswered close it (`SUTRA_WS_PING_INTERVAL_MS`). */
  webSocketPingMs: number;
}

/** Which Host names and browser origins the server serves. */
export interface OriginPolicy {
  /**
   * When true (auth `none`), a request whose Host / `:authority` names neither a
   * loopback name nor one of `allowedHosts` is refused with MISDIRECTED_REQUEST (DNS rebinding).
   */
  checkHost: boolean;
  /** Host names served besides loopback names (`SUTRA_ALLOWED_HOSTS`). */
  allowedHosts: readonly string[];
  /** Browser origins allowed cross-origin (`SUTRA_CORS_ORIGINS`); empty = same origin only. */
  corsOrigins: readonly string[];
}

/**
 * Creates the server, not yet listening (main listens). One port serves
 * HTTP/1.1 and HTTP/2: in cleartext by looking at each connection's first
 * bytes (the HTTP/2 preface means h2c with prior knowledge, anything else goes
 * to the HTTP/1.1 server), with TLS by ALPN (h2, http/1.1). Both carry gRPC,
 * gRPC-Web, Connect, grpc.health.v1, reflection and the REST routes.
 * WebSocket upgrades (HTTP/1.1 only) reach createWebSocketHandler: in
 * cleartext, a connection whose first request line targets a WebSocket route
 * goes to an HTTP/1.1 server of its own that takes upgrades, so every other
 * connection keeps Node's plain handling of `Upgrade` headers (an `h2c`
 * upgrade offer is answered in HTTP/1.1 as before); with TLS the server takes
 * upgrades itself.
 *
 * Both HTTP/2 servers send `maxStreamsPerConnection` as SETTINGS_MAX_CONCURRENT_STREAMS
 * (nghttp2 refuses streams beyond it), and health Watch streams hold slots of
 * createWatchLimits; `sutra_http2_sessions_open` and `sutra_watch_streams_open`
 * show what clients hold.
 *
 * The sniffing is ours rather than @httptoolkit/httpolyglot's: that package
 * hands HTTP/2 sockets over as JS streams, which measured about 17 times slower
 * for HTTP/2 requests on Node 20, while Node's HTTP/2 server takes the native
 * socket with the peeked bytes put back.
 *
 * `close()` also starts a graceful drain: HTTP/2 sessions get GOAWAY (streams
 * in flight finish), health Watch streams end, open embedding streams stop
 * reading, answer what they hold and end with SHUTTING_DOWN (the status
 * reaches the client before the stream is reset, see endAnsweredStream),
 * HTTP/1.1 answers not yet started carry `connection: close`, and HTTP/1.1
 * connections with nothing in progress are ended with a FIN once quiet
 * (createHttp1Drain); its callback runs once every connection has ended.
 *
 * An HTTP/2 request we answered before its body ended (an early error such as
 * PAYLOAD_TOO_LARGE) keeps being read and dropped, so the client gets the
 * answer rather than a reset; some clients (connect-node 2.1) then stop
 * sending without ending their side, so such streams are reset with NO_ERROR
 * (RFC 9113 section 8.1) once the server closes, instead of holding it open.
 */
export function createServer(deps: ServerDeps): net.Server {
  const shutdown = new AbortController();
  const sessions = new Set<Http2Session>();
  let closing = false;
  const streams = deps.streams ?? createStreamSessions({ embedder: deps.embedder });
  const access = deps.access ?? createAccessControl({
    authenticator: createAuthenticator({ mode: "none" }),
    rateLimiter: createRateLimiter({ requestsPerMinute: 0, tokensPerMinute: 0, burst: 0 }),
  });
  const corsOrigins = deps.origins?.corsOrigins ?? [];
  const checkOrigin = createOriginGuard({
    checkHost: deps.origins?.checkHost ?? access.authenticator.mode === "none",
    allowedHosts: deps.origins?.allowedHosts ?? [],
    corsOrigins,
  });
  const metrics = deps.metrics ?? createMetrics();
  const failures = deps.failures ?? createFailureCounter(metrics);
  const watchLimits = createWatchLimits({
    maxWatchStreams: deps.connectionLimits.maxWatchStreams,
    maxWatchStreamsPerConnection: deps.connectionLimits.maxWatchStreamsPerConnection,
  });
  registerConnectionGauges(metrics, { http2Sessions: () => sessions.size, watchStreams: watchLimits.open });
  // Sent in every HTTP/2 server's SETTINGS: nghttp2 refuses a client's streams beyond it (REFUSED_STREAM).
  const http2Settings = { maxConcurrentStreams: deps.connectionLimits.maxStreamsPerConnection };
  const listener = createRequestListener({
    embedder: deps.embedder,
    streams,
    logger: deps.logger,
    limits: deps.limits,
    shutdownSignal: shutdown.signal,
    healthPollMs: deps.healthPollMs ?? 1000,
    watchLimits,
    access,
    checkOrigin,
    cors: createCorsHandler(corsOrigins),
    metrics,
    failures,
    providers: deps.providers,
    jobs: deps.jobs,
  });
  const answeredEarly = new Set<http2.ServerHttp2Stream>();
  const http1 = createHttp1Drain();
  const serve: NodeRequestListener = (request, response) => {
    if ("stream" in request) {
      // Runs after the compatibility layer queued the trailers: the answer is complete.
      request.stream.once("wantTrailers", () => {
        if (!request.complete) endAnsweredStream(request.stream);
      });
    } else {
      http1.request(request, response as http.ServerResponse);
    }
    listener(request, response);
  };
  const endAnsweredStream = (stream: http2.ServerHttp2Stream): void => {
    if (closing) {
      // Not at once: a reset submitted now makes nghttp2 drop the trailers just queued (the status of a
      // gRPC call); by the next turn of the event loop they have been written out ahead of it.
      setImmediate(() => stream.close(http2.constants.NGHTTP2_NO_ERROR));
      return;
    }
    answeredEarly.add(stream);
    stream.once("close", () => answeredEarly.delete(stream));
  };
  const webSocket = createWebSocketHandler({
    streams,
    access,
    logger: deps.logger,
    maxMessageBytes: deps.limits.maxBodyBytes,
    pingIntervalMs: deps.connectionLimits.webSocketPingMs,
    maxBufferedBytes: deps.connectionLimits.webSocketMaxBufferedBytes,
  });
  const trackSession = (session: Http2Session): void => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  };
  const connections = createConnectionLimiter({
    maxPerAddress: deps.connectionLimits.maxConnectionsPerAddress,
    onRefused: () => metrics.connectionsRefusedTotal.inc({ reason: "per_address" }),
  });

  let server: net.Server;
  if (deps.tls !== undefined) {
    const secure = http2.createSecureServer(
      { cert: deps.tls.cert, key: deps.tls.key, allowHTTP1: true, ALPNProtocols: ["h2", "http/1.1"], handshakeTimeout: OPENING_DEADLINE_MS, settings: http2Settings },
      serve,
    );
    // An allowHTTP1 secure server reads these http.Server options from its own properties when it starts listening.
    Object.assign(secure, HTTP1_HEAD_TIMEOUTS);
    // Runs after Node wrapped the socket in TLS: destroying it ends that too, before any byte is read.
    secure.on("connection", (socket: net.Socket) => connections.admit(socket));
    secure.on("session", awaitClientSettings);
    secure.on("session", trackSession);
    secure.on("upgrade", guardUpgrades(checkOrigin, webSocket.upgrade, deps.logger));
    secure.on("secureConnection", (socket: tls.TLSSocket) => {
      if (socket.alpnProtocol !== "h2") http1.track(socket);
    });
    secure.on("upgrade", (request: http.IncomingMessage) => http1.release(request.socket));
    server = secure;
  } else {
    const cleartext2 = http2.createServer({ settings: http2Settings }, serve);
    cleartext2.on("session", trackSession);
    const cleartext1 = http.createServer(HTTP1_HEAD_TIMEOUTS, serve);
    const upgrading1 = http.createServer(HTTP1_HEAD_TIMEOUTS, serve).on("upgrade", guardUpgrades(checkOrigin, webSocket.upgrade, deps.logger));
    server = net.createServer((socket) => {
      if (connections.admit(socket)) handOver(socket, { http1: cleartext1, upgrading1, cleartext2 });
    });
    // Node starts an HTTP/1.1 server's connection tracking (header and request timeouts,
    // closing idle connections) on its own "listening"; these never listen themselves.
    server.on("listening", () => {
      cleartext1.emit("listening");
      upgrading1.emit("listening");
    });
    server.on("close", () => {
      cleartext1.close(() => undefined);
      upgrading1.close(() => undefined);
    });
    server.on("connection", http1.track);
    cleartext2.on("connection", http1.release);
    upgrading1.on("upgrade", (request: http.IncomingMessage) => http1.release(request.socket));
  }

  const close = server.close.bind(server);
  server.close = (callback?: (error?: Error) => void) => {
    if (closing) {
      close(callback);
      return server;
    }
    closing = true;
    shutdown.abort();
    streams.shutdown();
    webSocket.close();
    for (const stream of answeredEarly) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    for (const session of sessions) session.close();
    http1.drain();
    close(callback);
    return server;
  };
  return server;
}
