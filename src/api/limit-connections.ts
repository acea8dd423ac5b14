import type { Http2Session } from "node:http2";
import type net from "node:net";

/**
 * How long a connection has, from its start, to send its opening: the first
 * HTTP/1.1 request's line and headers, or the HTTP/2 preface and SETTINGS in
 * cleartext (handOver), the TLS handshake, then the first head or the HTTP/2
 * SETTINGS with TLS. A deadline, not an idle timeout: bytes sent slowly do not
 * extend it (slowloris).
 */
export const OPENING_DEADLINE_MS = 10_000;

/**
 * Options of the HTTP/1.1 servers: every request's head (the first on a
 * connection and each later keep-alive one, counted from its first byte) must
 * arrive within OPENING_DEADLINE_MS, else it is answered 408 and the
 * connection closed. Node looks for such requests only every
 * `connectionsCheckingInterval`, so a slow head lasts at most 11 s.
 * `requestTimeout` (whole request, body included) and `keepAliveTimeout`
 * (idle between requests) keep Node's defaults.
 */
export const HTTP1_HEAD_TIMEOUTS = { headersTimeout: OPENING_DEADLINE_MS, connectionsCheckingInterval: 1_000 } as const;

/**
 * Destroys an HTTP/2 session whose client has not sent its SETTINGS within
 * OPENING_DEADLINE_MS of the session's start: a TLS client that finished its
 * handshake with ALPN h2 and never sends the preface would otherwise hold the
 * connection for ever (Node's HTTP/2 server has no such timeout).
 */
export function awaitClientSettings(session: Http2Session): void {
  const deadline = setTimeout(() => session.destroy(), OPENING_DEADLINE_MS);
  const stop = (): void => clearTimeout(deadline);
  session.once("remoteSettings", stop);
  session.once("close", stop);
}

/** Counts open connections per client address and refuses those over a cap. */
export interface ConnectionLimiter {
  /**
   * True when `socket` may be served, and then it is counted until it closes;
   * false when its address already holds the cap: the socket has been
   * destroyed, before any of its bytes were read.
   */
  admit(socket: net.Socket): boolean;
}

/**
 * Creates a limiter of open connections per client address; `maxPerAddress`
 * 0 admits every connection (behind a proxy every client has the proxy's
 * address). `onRefused` runs for each refused connection (a metric).
 */
export function createConnectionLimiter(options: { maxPerAddress: number; onRefused(): void }): ConnectionLimiter {
  const open = new Map<string, number>();
  return {
    admit(socket) {
      if (options.maxPerAddress === 0) return true;
      // A client gone before its connection was accepted has no address; it closes at once.
      const address = socket.remoteAddress ?? "";
      const count = open.get(address) ?? 0;
      if (count >= options.maxPerAddress) {
        socket.destroy();
        options.onRefused();
        return false;
      }
      open.set(address, count + 1);
      socket.once("close", () => {
        const left = (open.get(address) ?? 1) - 1;
        if (left === 0) open.delete(address);
        else open.set(address, left);
      });
      return true;
    },
  };
}
