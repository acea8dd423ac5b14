/** Pings a client may leave unanswered; at the next ping time the connection is closed. */
const MAX_UNANSWERED_PINGS = 2;

/** What a connection's keepalive needs. */
export interface KeepaliveOptions {
  /** Time between pings (`SUTRA_WS_PING_INTERVAL_MS`, 30 s by default). */
  intervalMs: number;
  /** Sends a `ping` message with this id; the client answers a `pong` whose `payload.ping_id` names it. */
  ping(id: string): void;
  /** Told once, when MAX_UNANSWERED_PINGS pings went unanswered: the connection is to be closed. */
  onSilent(): void;
}

/** The ping side of one connection. */
export interface Keepalive {
  /** A `pong` came with this `ping_id`: a ping the server sent clears every unanswered one (the client is there); anything else is ignored. */
  answered(pingId: unknown): void;
  /** The connection closed: no more pings. */
  stop(): void;
}

/**
 * Creates the keepalive of one WebSocket connection: a `ping` message every
 * `intervalMs` (ids `ping-1`, `ping-2`, ...), and `onSilent` once two in a row
 * went unanswered by the next ping time, so a client that is gone is dropped.
 */
export function createKeepalive(options: KeepaliveOptions): Keepalive {
  const unanswered = new Set<string>();
  let sent = 0;
  const timer = setInterval(() => {
    if (unanswered.size >= MAX_UNANSWERED_PINGS) {
      clearInterval(timer);
      options.onSilent();
      return;
    }
    sent += 1;
    const id = `ping-${sent}`;
    unanswered.add(id);
    options.ping(id);
  }, options.intervalMs);
  return {
    answered(pingId) {
      if (typeof pingId === "string" && unanswered.has(pingId)) unanswered.clear();
    },
    stop: () => clearInterval(timer),
  };
}
