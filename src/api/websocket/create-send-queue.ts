import type { Logger } from "pino";
import { WebSocket } from "ws";

/** Bytes queued for a client beyond which a stream's next answer waits for them to be written. */
const SEND_HIGH_WATER_BYTES = 64 * 1024;

/** How long a connection closed with 1008 has to take its close frame before its socket is cut. */
const POLICY_CLOSE_GRACE_MS = 10_000;

/** What a connection's send queue needs. */
export interface SendQueueOptions {
  /** Bytes queued for the client beyond which reading stops; past twice this the connection is closed with 1008. */
  maxBufferedBytes: number;
  logger: Logger;
  requestId: string;
  /** Told when a write completes with no more than `maxBufferedBytes` still queued: read messages may be answered again. */
  onRoom(): void;
  /** Told as the connection is closed with 1008, before its close frame is queued: what was read will not be answered. */
  onPolicyClose(): void;
}

/** The writing side of one WebSocket connection, bounded by what the client has not taken yet. */
export interface SendQueue {
  /** The socket is open: answers are still queued and messages still read. */
  isOpen(): boolean;
  /** More than the bound is queued for the client: nothing more is read or answered until it drains. */
  backedUp(): boolean;
  /**
   * Closes the connection with 1008 (policy violation) and `reason`, after what is
   * already queued, and cuts it POLICY_CLOSE_GRACE_MS later if the client does not take
   * the close frame; what the client sends after it is not answered (a client that does
   * not read its answers is not read either). Does nothing once the socket is not open.
   */
  closeForPolicy(reason: string): void;
  /**
   * Queues a serialised message; resolves once it is written, or at once while at most
   * 64 KiB (or the bound, when lower) are queued, so a stream's answers wait for a slow
   * client. Resolves at once when the socket is not open.
   */
  write(text: string): Promise<void>;
}

/**
 * Creates the send queue of `webSocket`, which bounds what a client that stops reading makes
 * the server hold: after anything is queued for the client (answers, and ws's own pong
 * frames), past the bound reading stops (the socket is paused), and past twice the bound the
 * connection is closed with 1008 and cut POLICY_CLOSE_GRACE_MS later if it does not take the
 * close frame. Resuming reading is the connection's business (`onRoom`).
 */
export function createSendQueue(webSocket: WebSocket, options: SendQueueOptions): SendQueue {
  const streamHighWater = Math.min(SEND_HIGH_WATER_BYTES, options.maxBufferedBytes);
  let cutTimer: NodeJS.Timeout | undefined;

  const isOpen = () => webSocket.readyState === WebSocket.OPEN;
  const backedUp = () => webSocket.bufferedAmount > options.maxBufferedBytes;

  const closeForPolicy = (reason: string) => {
    if (!isOpen()) return;
    options.logger.warn(
      { requestId: options.requestId, bufferedBytes: webSocket.bufferedAmount, transport: "websocket", reason },
      "closing websocket connection (1008)",
    );
    options.onPolicyClose();
    webSocket.close(1008, reason);
    // Read on (messages are ignored once closing) so the client's close frame completes the handshake, unless it does not read.
    if (!backedUp()) webSocket.resume();
    cutTimer = setTimeout(() => webSocket.terminate(), POLICY_CLOSE_GRACE_MS);
  };
  /** After anything was queued for the client: past twice the bound it is closed, past the bound reading stops. */
  const checkQueued = () => {
    if (backedUp()) webSocket.pause();
    if (webSocket.bufferedAmount > 2 * options.maxBufferedBytes) closeForPolicy("too much queued for this client: it does not read its answers");
  };

  // ws answers ping frames itself; those pongs are queued for the client too.
  webSocket.on("ping", checkQueued);
  webSocket.once("close", () => clearTimeout(cutTimer));

  return {
    isOpen,
    backedUp,
    closeForPolicy,
    write: (text) =>
      new Promise((resolve) => {
        if (!isOpen()) {
          resolve();
          return;
        }
        webSocket.send(text, () => {
          resolve();
          if (!backedUp()) options.onRoom();
        });
        if (webSocket.bufferedAmount <= streamHighWater) resolve();
        checkQueued();
      }),
  };
}
