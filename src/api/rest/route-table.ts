import { getExtension, hasExtension } from "@bufbuild/protobuf";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { http } from "../../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../../gen/google/api/http_pb.js";
import { matchPathTemplate, parsePathTemplate } from "./path-template.js";
import type { PathTemplate } from "./path-template.js";

/** One REST route, transcoded from a `google.api.http` binding of an rpc. */
export interface RestRoute {
  /** Upper-case HTTP method (GET, POST, ...). */
  httpMethod: string;
  template: PathTemplate;
  /** "" (no body: every field not in the path comes from the query), "*" (the whole request), or a field name. */
  body: string;
  /** "" for the whole response, else the response field to answer with. */
  responseBody: string;
  method: DescMethod;
}

/** A route match: the route and the path variables by field path. */
export interface RouteMatch {
  route: RestRoute;
  variables: Record<string, string>;
}

/**
 * The seed API's base path: every `/v1/...` route also answers under
 * `/api/v1/...`, the base path of the seed API's clients (docs/REST.md).
 */
export const SEED_PATH_PREFIX = "/api";

/**
 * Builds the REST route table at runtime from the `google.api.http` options of
 * the services' methods (the rule and its `additional_bindings`), so a new
 * annotated rpc gets its route with no code here. Every template that starts
 * with `/v1/` is also registered under SEED_PATH_PREFIX.
 */
export function createRouteTable(services: readonly DescService[]): RestRoute[] {
  const routes: RestRoute[] = [];
  for (const service of services) {
    for (const method of service.methods) {
      const options = method.proto.options;
      if (options === undefined || !hasExtension(options, http)) continue;
      const rule = getExtension(options, http);
      for (const binding of [rule, ...rule.additionalBindings]) {
        const pattern = patternOf(binding);
        if (pattern === undefined) continue;
        const sources = pattern.path.startsWith("/v1/") ? [pattern.path, SEED_PATH_PREFIX + pattern.path] : [pattern.path];
        for (const source of sources) {
          routes.push({
            httpMethod: pattern.httpMethod,
            template: parsePathTemplate(source),
            body: binding.body,
            responseBody: binding.responseBody,
            method,
          });
        }
      }
    }
  }
  return routes;
}

function patternOf(rule: HttpRule): { httpMethod: string; path: string } | undefined {
  switch (rule.pattern.case) {
    case "get":
    case "put":
    case "post":
    case "delete":
    case "patch":
      return { httpMethod: rule.pattern.case.toUpperCase(), path: rule.pattern.value };
    case "custom":
      return { httpMethod: rule.pattern.value.kind.toUpperCase(), path: rule.pattern.value.path };
    default:
      return undefined;
  }
}

/**
 * Finds the route for a request: the first route whose method and template
 * match. `path` is the raw URL path (no query, still percent-encoded).
 */
export function findRoute(routes: readonly RestRoute[], httpMethod: string, path: string): RouteMatch | undefined {
  for (const route of routes) {
    if (route.httpMethod !== httpMethod) continue;
    const variables = matchPathTemplate(route.template, path);
    if (variables !== undefined) return { route, variables };
  }
  return undefined;
}
