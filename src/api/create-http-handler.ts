import type { JsonValue } from "@bufbuild/protobuf";
import { createContextValues } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { AccessControl, AccessLevel } from "../admission/access-control.js";
import { EmbedderError } from "../domain/errors.js";
import type { EmbedRequest, Principal } from "../domain/types.js";
import type { FailureCounter } from "../observability/count-failure.js";
import type { Metrics } from "../observability/metrics.js";
import { accessOfRpc, principalKey } from "./access-policy.js";
import { requestOriginOf, type OriginGuard } from "./check-request-origin.js";
import type { NodeRequest, NodeResponse } from "./node-types.js";
import type { RestHandler } from "./rest/create-rest-handler.js";
import { matchPathTemplate, parsePathTemplate, type PathTemplate } from "./rest/path-template.js";
import { readJsonRequest } from "./rest/read-json-request.js";
import { findRoute, SEED_PATH_PREFIX } from "./rest/route-table.js";
import { logEmbedderError } from "./to-connect-error.js";
import { admissionKey } from "./request-context.js";
import { writeRestError } from "./rest/write-rest-error.js";

/** One request to a hand-written HTTP route. */
export interface HttpCall {
  request: NodeRequest;
  response: NodeResponse;
  requestId: string;
  url: URL;
  /** Path variables, percent-decoded. */
  variables: Record<string, string>;
  /** The admitted caller; undefined on open routes. */
  principal?: Principal;
  /** Reads the body as JSON within the body limit (undefined when empty; UNSUPPORTED_MEDIA_TYPE unless it is `application/json`, see readJsonRequest). */
  readJson(): Promise<JsonValue | undefined>;
}

/**
 * A route that is not an rpc's transcoding (metrics, the seed API's extra
 * routes): its method, `google.api.http`-style path template (a `/v1/...`
 * template also answers under `/api/v1/...`), who may call it, and the handler,
 * which writes its answer or throws a domain error.
 */
export interface HttpRoute {
  method: string;
  path: string;
  access: AccessLevel;
  handle(call: HttpCall): Promise<void>;
}

/** What the HTTP side needs. */
export interface HttpHandlerOptions {
  routes: readonly HttpRoute[];
  /** The REST transcoder, for every other path. */
  rest: RestHandler;
  access: AccessControl;
  /** Host and browser-origin check, run on every request before the access check. */
  checkOrigin: OriginGuard;
  metrics: Metrics;
  /** Counts each refusal once (the front door shares the counter). */
  failures: FailureCounter;
  logger: Logger;
  maxBodyBytes: number;
}

interface CompiledRoute {
  route: HttpRoute;
  template: PathTemplate;
}

/**
 * Creates the handler of every request that is not an rpc: it finds the route
 * (hand-written routes first, then the REST transcoding), runs the origin
 * guard (Host, browser Origin) and the access check before any body is read
 * (authentication, role, request rate; the
 * principal reaches the REST implementations as a context value), counts the
 * answer in `sutra_requests_total` by route template and status, and writes a
 * debug access-log line (request id, principal, route, status, duration).
 * A 401 carries `WWW-Authenticate`.
 */
export function createHttpHandler(
  options: HttpHandlerOptions,
): (request: NodeRequest, response: NodeResponse, requestId: string, admission?: EmbedRequest["admission"]) => Promise<void> {
  const compiled: CompiledRoute[] = options.routes.flatMap((route) =>
    (route.path.startsWith("/v1/") ? [route.path, SEED_PATH_PREFIX + route.path] : [route.path]).map((path) => ({
      route,
      template: parsePathTemplate(path),
    })),
  );
  const wwwAuthenticate = options.access.authenticator.mode === "jwt" ? 'Bearer realm="sutra"' : 'Bearer realm="sutra", ApiKey header="X-API-Key"';

  return async (request, response, requestId, admission) => {
    const started = performance.now();
    const httpMethod = request.method ?? "GET";
    const url = new URL(request.url ?? "/", "http://localhost");
    // GET / is the playground page (its route is /index.html: the root is no google.api.http template).
    if (url.pathname === "/" && httpMethod === "GET") url.pathname = "/index.html";
    let own: { route: HttpRoute; variables: Record<string, string> } | undefined;
    for (const candidate of compiled) {
      if (candidate.route.method !== httpMethod) continue;
      const variables = matchPathTemplate(candidate.template, url.pathname);
      if (variables !== undefined) {
        own = { route: candidate.route, variables };
        break;
      }
    }
    const rest = own === undefined ? findRoute(options.rest.routes, httpMethod, url.pathname) : undefined;
    const route = own !== undefined ? `${httpMethod} ${own.route.path}` : rest !== undefined ? `${httpMethod} ${rest.route.template.source}` : "unmatched";
    const level: AccessLevel = own?.route.access ?? (rest === undefined ? "open" : accessOfRpc(rest.route.method.parent.typeName, rest.route.method.name));
    let principal: Principal | undefined;
    response.once("close", () => {
      options.metrics.recordRequest("http", route, String(response.statusCode), (performance.now() - started) / 1000);
      options.logger.debug(
        { requestId, principal: principal?.id, method: httpMethod, route, status: response.statusCode, durationMs: Math.round(performance.now() - started) },
        "request",
      );
    });
    try {
      options.checkOrigin(requestOriginOf(request));
      principal = await options.access.admit(request.headers, level);
    } catch (reason) {
      const error = EmbedderError.from(reason);
      logEmbedderError(options.logger, error, { requestId, method: httpMethod, path: url.pathname });
      options.failures(error);
      if (error.reason === "UNAUTHENTICATED") response.setHeader("www-authenticate", wwwAuthenticate);
      writeRestError(response, error, requestId);
      return;
    }
    if (own === undefined) {
      await options.rest.serve({ request, response, requestId, url, match: rest, values: createContextValues().set(principalKey, principal).set(admissionKey, admission) });
      return;
    }
    try {
      await own.route.handle({
        request,
        response,
        requestId,
        url,
        variables: own.variables,
        principal,
        readJson: () => readJsonRequest(request, options.maxBodyBytes),
      });
    } catch (reason) {
      const error = EmbedderError.from(reason);
      logEmbedderError(options.logger, error, { requestId, method: httpMethod, path: url.pathname });
      options.failures(error);
      writeRestError(response, error, requestId);
    }
  };
}
