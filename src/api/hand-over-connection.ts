import type http from "node:http";
import type http2 from "node:http2";
import type net from "node:net";
import { isWebSocketTarget } from "./websocket/create-websocket-handler.js";

/** The first bytes an HTTP/2 client with prior knowledge sends; no HTTP/1 request starts with them. */
const HTTP2_PREFACE_START = Buffer.from("PRI * HTTP/2.0");

/** A connection that has not said which protocol it speaks within this time is dropped. */
const SNIFF_TIMEOUT_MS = 30_000;

/** Longest HTTP/1.1 request line read to route a connection; a longer one goes to the HTTP/1.1 server as it is. */
const REQUEST_LINE_LIMIT = 8 * 1024;

/** Where handOver sends a cleartext connection. */
export interface CleartextServers {
  http1: http.Server;
  /** HTTP/1.1 for connections that open with a request to a WebSocket route: this one takes upgrades. */
  upgrading1: http.Server;
  cleartext2: http2.Http2Server;
}

/**
 * Reads a connection's first bytes, puts them back, and hands the socket to
 * the HTTP/2 server when they are the HTTP/2 preface, to the upgrading
 * HTTP/1.1 server when its first request line targets a WebSocket route, else
 * to the HTTP/1.1 server (which also answers garbage with 400).
 */
export function handOver(socket: net.Socket, servers: CleartextServers): void {
  let seen = Buffer.alloc(0);
  const drop = (): void => {
    socket.destroy();
  };
  socket.on("error", drop);
  socket.setTimeout(SNIFF_TIMEOUT_MS, drop);
  const peek = (): void => {
    const chunk = socket.read() as Buffer | null;
    if (chunk === null) {
      socket.once("readable", peek);
      return;
    }
    seen = Buffer.concat([seen, chunk]);
    const compared = Math.min(seen.byteLength, HTTP2_PREFACE_START.byteLength);
    const http2Preface = seen.subarray(0, compared).equals(HTTP2_PREFACE_START.subarray(0, compared));
    if (http2Preface && seen.byteLength < HTTP2_PREFACE_START.byteLength) {
      socket.once("readable", peek);
      return;
    }
    const lineEnd = http2Preface ? -1 : seen.indexOf("\r\n");
    if (!http2Preface && lineEnd === -1 && seen.byteLength < REQUEST_LINE_LIMIT) {
      socket.once("readable", peek);
      return;
    }
    socket.off("error", drop);
    socket.setTimeout(0);
    socket.unshift(seen);
    const target = lineEnd === -1 ? "" : (seen.subarray(0, lineEnd).toString("latin1").split(" ")[1] ?? "");
    const chosen = http2Preface ? servers.cleartext2 : isWebSocketTarget(target) ? servers.upgrading1 : servers.http1;
    chosen.emit("connection", socket);
  };
  socket.once("readable", peek);
}
