import { ServerResponse, type IncomingMessage } from "node:http";
import { isIPv4, isIPv6, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { EmbedderError } from "../domain/errors.js";
import type { OriginPolicy } from "./create-server.js";
import type { NodeRequest } from "./node-types.js";
import { REQUEST_ID_HEADER, resolveRequestId } from "./request-context.js";
import { writeRestError } from "./rest/write-rest-error.js";
import { admittedKey } from "./access-policy.js";
import { logEmbedderError } from "./to-connect-error.js";

/** What the origin guard looks at in a request. */
export interface RequestOrigin {
  /** The Host header (HTTP/1.1) or `:authority` (HTTP/2) as sent; undefined when the request has none. */
  authority: string | undefined;
  /** The `Origin` header as sent; undefined when absent (clients other than browsers). */
  origin: string | undefined;
  /** Any method but GET, HEAD and OPTIONS, and every WebSocket upgrade. */
  changesState: boolean;
}

/**
 * Checks one request against an OriginPolicy; returns when it may be served,
 * throws MISDIRECTED_REQUEST or ORIGIN_NOT_ALLOWED otherwise.
 */
export type OriginGuard = (request: RequestOrigin) => void;

/** Methods that change nothing, which a foreign browser origin may call (browsers keep the answer from its page without CORS). */
const SAFE_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);

/** Longest host name or origin repeated in an error's details. */
const MAX_ECHOED_CHARS = 255;

/**
 * Creates the guard against cross-site requests and DNS rebinding, in this order:
 * - A request without a Host / `:authority`, or with one that is not a host
 *   name with an optional port, is MISDIRECTED_REQUEST in every auth mode
 *   (HTTP/1.1 requires Host; gRPC and Connect cannot route without it).
 * - With `checkHost` (auth `none`, where nothing else stands between a web
 *   page and the service), a host name that is neither a loopback name
 *   (`localhost`, `*.localhost`, `127.x.x.x`, `[::1]`) nor in `allowedHosts`
 *   is MISDIRECTED_REQUEST: a page whose DNS name was rebound to this address
 *   sends its own name. Names compare case-insensitively, without the port
 *   and a trailing dot. With api-key or jwt the key or token is the defence.
 * - A state-changing request (see RequestOrigin) whose `Origin` is present and
 *   is neither same-origin (its host and port equal the request's Host) nor in
 *   `corsOrigins` is ORIGIN_NOT_ALLOWED, in every auth mode; `Origin: null`
 *   (sandboxed frames, local files) is refused too. Requests without `Origin`
 *   pass: browsers send it on every state-changing request.
 * Throws an Error at start-up for an `allowedHosts` or `corsOrigins` entry it cannot read.
 */
export function createOriginGuard(policy: OriginPolicy): OriginGuard {
  const allowedHosts = new Set(policy.allowedHosts.map(readAllowedHost));
  const corsOrigins = parseCorsOrigins(policy.corsOrigins);
  return ({ authority, origin, changesState }) => {
    const hostName = authority === undefined ? undefined : hostNameOf(authority);
    if (authority === undefined || hostName === undefined) {
      throw new EmbedderError("MISDIRECTED_REQUEST", "the request names no valid host (Host header or :authority)");
    }
    if (policy.checkHost && !isLoopbackHostName(hostName) && !allowedHosts.has(hostName)) {
      throw new EmbedderError(
        "MISDIRECTED_REQUEST",
        "this server does not answer for that host name (with auth none it serves loopback names and SUTRA_ALLOWED_HOSTS only)",
        { details: { host: hostName.slice(0, MAX_ECHOED_CHARS) } },
      );
    }
    if (!changesState || origin === undefined) return;
    const normalized = normalizeOrigin(origin);
    if (normalized !== undefined && (corsOrigins.has(normalized) || isSameOrigin(normalized, authority))) return;
    throw new EmbedderError("ORIGIN_NOT_ALLOWED", "requests that change state are not accepted from this browser origin (SUTRA_CORS_ORIGINS lists the allowed ones)", {
      details: { origin: origin.slice(0, MAX_ECHOED_CHARS) },
    });
  };
}

/**
 * Reads `SUTRA_CORS_ORIGINS` entries (`scheme://host[:port]`, http or https;
 * a trailing slash is allowed) into their serialized origins (lower case,
 * default port dropped), the form browsers send in `Origin`. Throws an Error
 * naming the first entry that is not such an origin.
 */
export function parseCorsOrigins(entries: readonly string[]): ReadonlySet<string> {
  return new Set(
    entries.map((entry) => {
      const origin = normalizeOrigin(entry);
      if (origin === undefined) throw new Error(`SUTRA_CORS_ORIGINS: "${entry}" is not an origin (http(s)://host[:port])`);
      return origin;
    }),
  );
}

/** An `Origin` value in its serialized form, or undefined when it is not an http(s) origin (`null` included). */
export function normalizeOrigin(text: string): string | undefined {
  const url = bareUrl(text);
  return url !== undefined && (url.protocol === "http:" || url.protocol === "https:") ? url.origin : undefined;
}

/**
 * The host name a Node request's Host / `:authority` names (see hostNameOf),
 * or undefined when it has none or a malformed one; connect-node cannot
 * serve such a request (it throws), so the request listener sends it to the
 * HTTP side, whose guard refuses it.
 */
export function requestHostName(request: NodeRequest): string | undefined {
  const authority = requestAuthority(request);
  return authority === undefined ? undefined : hostNameOf(authority);
}

/**
 * The host name an authority names: lower case, without the port and a
 * trailing dot, IPv6 in brackets, as the WHATWG URL parser reads it (the
 * parser connect-node builds each rpc's URL with). Undefined when it is not a
 * host with an optional port (user info, a path, characters a host cannot hold).
 */
export function hostNameOf(authority: string): string | undefined {
  const hostName = bareUrl(`http://${authority}`)?.hostname.replace(/\.$/, "");
  return hostName === "" ? undefined : hostName;
}

/** The Node request's view for the guard; `upgrade` marks a WebSocket upgrade, which always changes state. */
export function requestOriginOf(request: NodeRequest, upgrade = false): RequestOrigin {
  return {
    authority: requestAuthority(request),
    origin: request.headers.origin,
    changesState: upgrade || !SAFE_METHODS.has(request.method ?? "GET"),
  };
}

/**
 * Server interceptor that runs the guard on every rpc of every RPC protocol,
 * before the access check, so a refusal is answered in the protocol's own
 * error form (PERMISSION_DENIED with the reason in ErrorInfo); the error
 * interceptor outside it converts the domain error. The authority comes from
 * the call's URL, which connect-node builds from the request's authority.
 * Calls the early gRPC admission let through were guarded there.
 */
export function createOriginInterceptor(guard: OriginGuard): Interceptor {
  return (next) => async (request) => {
    // The early gRPC admission already ran the guard on this call.
    if (request.contextValues.get(admittedKey) !== undefined) return next(request);
    guard({
      authority: new URL(request.url).host,
      origin: request.header.get("origin") ?? undefined,
      changesState: !SAFE_METHODS.has(request.requestMethod),
    });
    return next(request);
  };
}

/** A Node HTTP server's `upgrade` listener. */
export type UpgradeListener = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

/**
 * Wraps an `upgrade` listener so the guard sees every upgrade first; a
 * refused one is answered with its status in the REST error envelope (with
 * `x-request-id`) and the connection closed, as the WebSocket handler answers
 * refused callers.
 */
export function guardUpgrades(guard: OriginGuard, upgrade: UpgradeListener, logger: Logger): UpgradeListener {
  return (request, socket, head) => {
    try {
      guard(requestOriginOf(request, true));
    } catch (reason) {
      const error = EmbedderError.from(reason);
      const requestId = resolveRequestId(request.headers[REQUEST_ID_HEADER]);
      logEmbedderError(logger, error, { requestId, transport: "websocket" });
      socket.on("error", () => socket.destroy());
      const response = new ServerResponse(request);
      response.shouldKeepAlive = false;
      response.assignSocket(socket as Socket);
      response.once("finish", () => socket.end());
      response.setHeader(REQUEST_ID_HEADER, requestId);
      writeRestError(response, error, requestId);
      return;
    }
    upgrade(request, socket, head);
  };
}

/**
 * The Host / `:authority` of a Node request, read as connect-node reads it
 * (`authority` on HTTP/2, the Host header on HTTP/1.x), so that what the
 * guard checks is what the rpc handlers see.
 */
function requestAuthority(request: NodeRequest): string | undefined {
  return "authority" in request ? request.authority : request.headers.host;
}

/** The URL `text` parses to when it is a scheme and an authority only (no user info, path, query or fragment). */
function bareUrl(text: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  const bare = url.username === "" && url.password === "" && url.pathname === "/" && url.search === "" && url.hash === "";
  return bare ? url : undefined;
}

/** An `allowedHosts` entry's host name; a bare IPv6 address (a pod IP from the downward API) is taken as well as one in brackets. */
function readAllowedHost(entry: string): string {
  const trimmed = entry.trim();
  const hostName = hostNameOf(isIPv6(trimmed) ? `[${trimmed}]` : trimmed);
  if (hostName === undefined) throw new Error(`SUTRA_ALLOWED_HOSTS: "${entry}" is not a host name (with an optional port)`);
  return hostName;
}

function isLoopbackHostName(hostName: string): boolean {
  return hostName === "localhost" || hostName.endsWith(".localhost") || hostName === "[::1]" || (isIPv4(hostName) && hostName.startsWith("127."));
}

/** True when a serialized origin's host and port are the authority's (scheme aside: a proxy may end TLS in front). */
function isSameOrigin(origin: string, authority: string): boolean {
  const { protocol, host } = new URL(origin);
  try {
    return new URL(`${protocol}//${authority}`).host === host;
  } catch {
    return false;
  }
}
