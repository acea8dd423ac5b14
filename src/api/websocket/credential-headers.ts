import type { IncomingHttpHeaders } from "node:http";

/** The subprotocol of the message protocol of docs/STREAMING.md; the server selects it when a client offers it. */
export const SUTRA_SUBPROTOCOL = "sutra.v1";

/** Prefix of the subprotocol that carries a browser's credential: `bearer.<token>`. */
const BEARER_SUBPROTOCOL_PREFIX = "bearer.";

/** The subprotocols an upgrade request offers (`Sec-WebSocket-Protocol`), in order. */
export function offeredSubprotocols(headers: IncomingHttpHeaders): string[] {
  const offered = headers["sec-websocket-protocol"] ?? "";
  return offered.split(",").map((protocol) => protocol.trim()).filter((protocol) => protocol !== "");
}

/**
 * The headers an upgrade is authenticated with: its own, plus `authorization:
 * Bearer <token>` from a `bearer.<token>` subprotocol when it carries neither
 * `authorization` nor `x-api-key` (browsers cannot set headers on a
 * WebSocket). The token is never logged: only the access check reads it.
 */
export function credentialHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  if (presentsCredentials(headers)) return headers;
  const bearer = offeredSubprotocols(headers).find((protocol) => protocol.startsWith(BEARER_SUBPROTOCOL_PREFIX));
  return bearer === undefined ? headers : { ...headers, authorization: `Bearer ${bearer.slice(BEARER_SUBPROTOCOL_PREFIX.length)}` };
}

/** True when the headers carry a credential (`authorization` or `x-api-key`). */
export function presentsCredentials(headers: IncomingHttpHeaders): boolean {
  return headers.authorization !== undefined || headers["x-api-key"] !== undefined;
}
