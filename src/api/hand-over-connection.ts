import http from "node:http";
import type http2 from "node:http2";
import type net from "node:net";
import { OPENING_DEADLINE_MS } from "./limit-connections.js";
import { isWebSocketTarget } from "./websocket/create-websocket-handler.js";

/** The HTTP/2 client connection preface (RFC 9113 section 3.4); no HTTP/1 request starts with its first 14 bytes. */
const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** The bytes that tell HTTP/2 from HTTP/1. */
const HTTP2_PREFACE_START = HTTP2_PREFACE.subarray(0, 14);

/** An HTTP/2 frame header; the preface is followed by the client's SETTINGS frame. */
const FRAME_HEADER_BYTES = 9;

/** Largest frame an HTTP/2 client may send before the settings are agreed (RFC 9113 section 4.2); a longer one is the HTTP/2 server's to refuse. */
const INITIAL_MAX_FRAME_BYTES = 16_384;

/** Where an HTTP/1 head ends. */
const HEAD_END = Buffer.from("\r\n\r\n");

/** Where handOver sends a cleartext connection. */
export interface CleartextServers {
  http1: http.Server;
  /** HTTP/1.1 for connections that open with a request to a WebSocket route: this one takes upgrades. */
  upgrading1: http.Server;
  cleartext2: http2.Http2Server;
}

/**
 * Reads a connection's opening, puts it back, and hands the socket to the
 * HTTP/2 server when it is the HTTP/2 preface, to the upgrading HTTP/1.1
 * server when its first request line targets a WebSocket route, else to the
 * HTTP/1.1 server (which also answers garbage with 400).
 *
 * The opening is the preface and the client's first frame (its SETTINGS) for
 * HTTP/2, the first request's whole head for HTTP/1 (or Node's header size
 * limit of bytes without a head end, which the HTTP/1.1 server then refuses).
 * A connection that has not sent it within OPENING_DEADLINE_MS of its start
 * is dropped, however it paces its bytes.
 */
export function handOver(socket: net.Socket, servers: CleartextServers): void {
  const chunks: Buffer[] = [];
  let received = 0;
  let headEnded = false;
  let lastBytes = Buffer.alloc(0);
  const drop = (): void => {
    socket.destroy();
  };
  const deadline = setTimeout(drop, OPENING_DEADLINE_MS);
  const stopDeadline = (): void => clearTimeout(deadline);
  socket.on("error", drop);
  socket.once("close", stopDeadline);
  const peek = (): void => {
    const chunk = socket.read() as Buffer | null;
    if (chunk !== null) {
      chunks.push(chunk);
      received += chunk.byteLength;
      // A head end split between two chunks is found in the previous chunk's last 3 bytes and this one.
      const searched = Buffer.concat([lastBytes, chunk]);
      headEnded ||= searched.includes(HEAD_END);
      lastBytes = Buffer.from(searched.subarray(-(HEAD_END.byteLength - 1)));
    }
    const start = Buffer.concat(chunks, Math.min(received, HTTP2_PREFACE.byteLength + FRAME_HEADER_BYTES));
    const compared = Math.min(start.byteLength, HTTP2_PREFACE_START.byteLength);
    const http2Preface = start.subarray(0, compared).equals(HTTP2_PREFACE_START.subarray(0, compared));
    const complete = http2Preface ? received >= http2OpeningBytes(start) : headEnded || received > http.maxHeaderSize;
    if (!complete) {
      socket.once("readable", peek);
      return;
    }
    stopDeadline();
    socket.off("close", stopDeadline);
    socket.off("error", drop);
    const opening = Buffer.concat(chunks, received);
    socket.unshift(opening);
    const lineEnd = http2Preface ? -1 : opening.indexOf("\r\n");
    const target = lineEnd === -1 ? "" : (opening.subarray(0, lineEnd).toString("latin1").split(" ")[1] ?? "");
    const chosen = http2Preface ? servers.cleartext2 : isWebSocketTarget(target) ? servers.upgrading1 : servers.http1;
    chosen.emit("connection", socket);
  };
  socket.once("readable", peek);
}

/**
 * Bytes of an HTTP/2 opening given its first bytes: the preface, a frame
 * header and that frame's payload (capped at INITIAL_MAX_FRAME_BYTES);
 * Infinity while the frame header has not arrived.
 */
function http2OpeningBytes(start: Buffer): number {
  const headerEnd = HTTP2_PREFACE.byteLength + FRAME_HEADER_BYTES;
  if (start.byteLength < headerEnd) return Infinity;
  return headerEnd + Math.min(start.readUIntBE(HTTP2_PREFACE.byteLength, 3), INITIAL_MAX_FRAME_BYTES);
}
