import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

/** A request as Node's HTTP/1.1 or HTTP/2 (compatibility API) server hands it over. */
export type NodeRequest = IncomingMessage | Http2ServerRequest;

/** The response that goes with a NodeRequest. */
export type NodeResponse = ServerResponse | Http2ServerResponse;

/** A request handler that serves both HTTP versions on one port. */
export type NodeRequestListener = (request: NodeRequest, response: NodeResponse) => void;

/**
 * Sends a complete JSON answer on either HTTP version: status, headers,
 * `content-type: application/json` and `content-length`. Answers nothing when
 * the response has already started (the client has its status by then).
 */
export function sendJson(response: NodeResponse, status: number, headers: Record<string, string>, body: unknown): void {
  if (response.headersSent) return;
  const text = JSON.stringify(body);
  response.statusCode = status;
  for (const [name, value] of Object.entries(headers)) response.setHeader(name, value);
  response.setHeader("content-type", "application/json; charset=utf-8");
  response.setHeader("content-length", Buffer.byteLength(text));
  response.end(text);
}
