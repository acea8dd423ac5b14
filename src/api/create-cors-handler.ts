import cors from "cors";
import { normalizeOrigin, parseCorsOrigins } from "./check-request-origin.js";
import type { NodeRequest, NodeResponse } from "./node-types.js";
import { DIMENSIONS_POLICY_HEADER, PROVIDER_HEADER, providerHeaders, REQUEST_ID_HEADER, timingHeaders } from "./request-context.js";

/**
 * Gives one request its CORS treatment before it is dispatched. Returns true
 * when it answered the request itself (a preflight from an allowed origin),
 * false when the request still has to be served.
 */
export type CorsHandler = (request: NodeRequest, response: NodeResponse) => boolean;

/** Methods a cross-origin page may use: the REST routes and the RPC protocols use GET and POST only. */
export const CORS_ALLOWED_METHODS: readonly string[] = ["GET", "POST", "OPTIONS"];

/**
 * Request headers a cross-origin page may send: those connect-web sets for
 * Connect (`connect-*`) and gRPC-Web (`x-grpc-web`, `x-user-agent`,
 * `grpc-*`), the credentials the server takes (`authorization`, `x-api-key`),
 * the request id a client may choose and the provider routing header.
 */
export const CORS_ALLOWED_HEADERS: readonly string[] = [
  "content-type",
  "connect-protocol-version",
  "connect-timeout-ms",
  "connect-content-encoding",
  "connect-accept-encoding",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "x-grpc-web",
  "x-user-agent",
  "authorization",
  "x-api-key",
  REQUEST_ID_HEADER,
  PROVIDER_HEADER,
];

/**
 * Response headers a cross-origin page may read: the gRPC status of a
 * trailers-only gRPC-Web answer (connect-web reads it from the headers),
 * `retry-after`, `www-authenticate`, the request id, the timing headers, who
 * produced the vectors and the dimensions policy applied. Names come from the
 * functions and constants that write them, so a header added there is exposed too.
 */
export const CORS_EXPOSED_HEADERS: readonly string[] = [
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  "retry-after",
  "www-authenticate",
  REQUEST_ID_HEADER,
  ...Object.keys(timingHeaders({ totalMs: 0, tokenizationMs: 0, queueMs: 0, inferenceMs: 0 })),
  ...Object.keys(providerHeaders({ provider: "", fallbackFrom: "" })),
  DIMENSIONS_POLICY_HEADER,
];

/** How long a browser may keep a preflight's answer, in seconds: Chromium's own cap (Firefox keeps one a day at most). */
export const CORS_MAX_AGE_SECONDS = 7200;

/**
 * Creates the CORS step of the request listener for the origins of
 * `SUTRA_CORS_ORIGINS` (parsed and compared as the origin guard does: case
 * and default port do not matter; `Origin: null` is never allowed). With an
 * empty list (the default) it does nothing: the server serves its own origin
 * only. Otherwise every answer carries `Vary: Origin` (a cache must not serve
 * one origin's answer to another), and for a request whose `Origin` is listed:
 * - a preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered
 *   here with 204, `Access-Control-Allow-Origin` (the origin, never `*`),
 *   the CORS_ALLOWED_METHODS, CORS_ALLOWED_HEADERS and CORS_MAX_AGE_SECONDS;
 * - any other request gets `Access-Control-Allow-Origin` and
 *   `Access-Control-Expose-Headers` (CORS_EXPOSED_HEADERS) before it is
 *   dispatched, so every transport's answer, errors included, carries them.
 * A request from an origin not listed gets no CORS header, so the browser
 * keeps the answer from the page; a preflight from it goes on to the routes
 * like any OPTIONS request. This step lets nothing through: the origin guard
 * still refuses state-changing requests from origins not listed, and the
 * access check still runs (preflights carry no credentials, so they are
 * answered before it). No credentials mode: tokens travel in headers, not cookies.
 *
 * The headers are written by the well-kept `cors` package (expressjs/cors)
 * rather than by code of our own: it needs only `method`, `headers`,
 * `setHeader`, `statusCode` and `end`, all of which node:http and the HTTP/2
 * compatibility API have, and calls back synchronously. It treats every OPTIONS as
 * a preflight, so an OPTIONS without `Access-Control-Request-Method` is not
 * given to it.
 */
export function createCorsHandler(corsOrigins: readonly string[]): CorsHandler {
  const allowed = parseCorsOrigins(corsOrigins);
  const middleware = cors({
    origin: (origin, callback) => {
      const normalized = origin === undefined ? undefined : normalizeOrigin(origin);
      callback(null, normalized !== undefined && allowed.has(normalized));
    },
    methods: [...CORS_ALLOWED_METHODS],
    allowedHeaders: [...CORS_ALLOWED_HEADERS],
    exposedHeaders: [...CORS_EXPOSED_HEADERS],
    maxAge: CORS_MAX_AGE_SECONDS,
  });
  return (request, response) => {
    if (allowed.size === 0) return false;
    response.setHeader("vary", "Origin");
    if (request.headers.origin === undefined) return false;
    if (request.method === "OPTIONS" && request.headers["access-control-request-method"] === undefined) return false;
    // The middleware calls next for every request it does not answer; it answers allowed preflights only.
    let answered = true;
    middleware(request, response, () => {
      answered = false;
    });
    return answered;
  };
}
