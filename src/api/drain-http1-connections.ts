import type http from "node:http";
import type net from "node:net";

/** While draining, how often quiet connections are looked for. */
const SWEEP_MS = 100;

/**
 * How long a connection must have been quiet (no request in progress, its last
 * answer flushed, no byte read) before a draining server ends it: a keep-alive
 * client sends its next request within this time of an answer, and that
 * request is answered (SHUTTING_DOWN, `connection: close`) instead of crossing
 * the server's FIN on the wire.
 */
const QUIET_MS = 250;

/** After the server's FIN, how long the client gets to close its side before the socket is destroyed. */
const LINGER_MS = 2000;

/** HTTP/1.1 connections of a server, tracked so that closing it cuts no request and no answer. */
export interface Http1Drain {
  /** Tracks a connection from its first byte on (before its protocol is known). */
  track(socket: net.Socket): void;
  /** Stops tracking a connection another protocol took over (HTTP/2, a WebSocket upgrade). */
  release(socket: net.Socket): void;
  /** An HTTP/1.1 request began: its connection is busy until `response` has been flushed. */
  request(request: http.IncomingMessage, response: http.ServerResponse): void;
  /**
   * Starts draining: answers whose headers are not sent yet, and every later
   * one, carry `connection: close`, so Node ends their connection once they
   * are flushed; a connection with nothing in progress is ended (FIN) once it
   * has been quiet for QUIET_MS, and destroyed LINGER_MS later if the client
   * has not closed it by then. Idempotent.
   */
  drain(): void;
}

interface ConnectionState {
  /** Answers of requests begun on the connection and not yet flushed (more than one when a client pipelines). */
  answering: Set<http.ServerResponse>;
  /** When the connection last turned quiet (connected, or its last answer flushed). */
  quietSince: number;
  /** `socket.bytesRead` then: more read since means a request is arriving. */
  bytesReadThen: number;
  ended: boolean;
}

/**
 * Creates the tracker. Node's own `closeIdleConnections()` is not enough for
 * a graceful drain: it destroys every connection with no request being parsed,
 * so a keep-alive client's next request, already sent but not yet read,
 * meets a reset (and the reset can also discard the previous answer the client
 * has not read yet), and a connection whose answer is ended but not yet
 * flushed is cut.
 */
export function createHttp1Drain(): Http1Drain {
  const connections = new Map<net.Socket, ConnectionState>();
  let draining = false;
  let sweeper: NodeJS.Timeout | undefined;

  const sweep = (): void => {
    const now = performance.now();
    for (const [socket, state] of connections) {
      if (state.ended || state.answering.size > 0) continue;
      if (socket.bytesRead !== state.bytesReadThen || socket.writableLength > 0) {
        state.quietSince = now;
        state.bytesReadThen = socket.bytesRead;
        continue;
      }
      if (now - state.quietSince < QUIET_MS) continue;
      state.ended = true;
      socket.end();
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
    }
    if (connections.size === 0 && sweeper !== undefined) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };
  const startSweeping = (): void => {
    if (draining && sweeper === undefined) sweeper = setInterval(sweep, SWEEP_MS).unref();
  };

  const stateOf = (socket: net.Socket): ConnectionState => {
    const known = connections.get(socket);
    if (known !== undefined) return known;
    const state: ConnectionState = { answering: new Set(), quietSince: performance.now(), bytesReadThen: socket.bytesRead, ended: false };
    connections.set(socket, state);
    socket.once("close", () => connections.delete(socket));
    startSweeping();
    return state;
  };

  return {
    track(socket) {
      // A connection refused on arrival (a per-address cap) is destroyed before it gets here.
      if (!socket.destroyed) stateOf(socket);
    },
    release(socket) {
      connections.delete(socket);
    },
    request(request, response) {
      const socket = request.socket;
      const state = stateOf(socket);
      state.answering.add(response);
      if (draining) response.setHeader("connection", "close");
      response.once("close", () => {
        state.answering.delete(response);
        state.quietSince = performance.now();
        state.bytesReadThen = socket.bytesRead;
      });
    },
    drain() {
      if (draining) return;
      draining = true;
      for (const state of connections.values()) {
        for (const response of state.answering) if (!response.headersSent) response.setHeader("connection", "close");
      }
      startSweeping();
      sweep();
    },
  };
}
