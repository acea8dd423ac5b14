import { create } from "@bufbuild/protobuf";
import type { DescMethod, JsonValue, Message } from "@bufbuild/protobuf";
import { createHandlerContext } from "@connectrpc/connect";
import type { ContextValues, MethodImplSpec, ServiceImplSpec } from "@connectrpc/connect";
import type { Logger } from "pino";
import { EmbedderError } from "../../domain/errors.js";
import { sendJson } from "../node-types.js";
import type { NodeRequest, NodeResponse } from "../node-types.js";
import { requestIdKey } from "../request-context.js";
import { logEmbedderError } from "../to-connect-error.js";
import { readJsonRequest } from "./read-json-request.js";
import { messageToRestJson, restRequestToMessage } from "./rest-json.js";
import { createRouteTable } from "./route-table.js";
import type { RestRoute, RouteMatch } from "./route-table.js";
import { writeRestError } from "./write-rest-error.js";
import { writeRestStream } from "./write-rest-stream.js";

/** What the REST transcoder needs. */
export interface RestHandlerOptions {
  /** The service implementations, as the Connect router also serves them. */
  services: readonly ServiceImplSpec[];
  maxBodyBytes: number;
  logger: Logger;
  /** HTTP status of a successful answer when it is not 200 (e.g. 503 for an unhealthy health report). */
  statusOf?: (method: DescMethod, response: Message) => number | undefined;
  /** Called with every error the handler answers (to count failures by reason). */
  onError?: (error: EmbedderError) => void;
  /** Other JSON dialects of a route's body, tried in order before the rpc's own (the OpenAI dialect of POST /v1/embeddings). */
  dialects?: readonly RestDialect[];
}

/** A request for a dialect, its body already read. */
export interface DialectCall {
  request: NodeRequest;
  response: NodeResponse;
  requestId: string;
  body: JsonValue | undefined;
  /** The call's context values (request id, the admitted principal). */
  values: ContextValues;
}

/**
 * A second JSON dialect on the route of an rpc, chosen by the body's shape. It
 * writes its own answer; what it throws becomes the REST error envelope.
 */
export interface RestDialect {
  /** The rpc whose route the dialect shares. */
  method: DescMethod;
  accepts(body: JsonValue | undefined): boolean;
  serve(call: DialectCall): Promise<void>;
}

/** One REST request, its route already found (undefined: no route matched). */
export interface RestRequest {
  request: NodeRequest;
  response: NodeResponse;
  requestId: string;
  url: URL;
  match: RouteMatch | undefined;
  /** What the access check learned (the principal). */
  values: ContextValues;
}

/** The REST transcoder: its routes, so the HTTP side finds a request's route once, and the call itself. */
export interface RestHandler {
  readonly routes: readonly RestRoute[];
  /** Serves one request; it never rejects (failures become the REST error envelope). */
  serve(call: RestRequest): Promise<void>;
}

/**
 * Creates the REST transcoder: routes come from the services' `google.api.http`
 * annotations (createRouteTable), a request becomes the rpc's request message
 * (path variables, body, query; both JSON spellings; a body only as
 * `application/json`, see readJsonRequest), the same implementation
 * the Connect router runs is called with a handler context of protocol "rest",
 * and the answer is rendered in the REST JSON mapping with the headers the
 * implementation set (timing headers). A server-streaming rpc answers as
 * NDJSON or SSE by `Accept` (writeRestStream). Unknown routes are
 * ROUTE_NOT_FOUND; annotated client- or bidi-streaming rpcs are NOT_IMPLEMENTED.
 */
export function createRestHandler(options: RestHandlerOptions): RestHandler {
  const routes = createRouteTable(options.services.map((spec) => spec.service));
  const implementations = new Map<DescMethod, MethodImplSpec>();
  for (const spec of options.services) {
    for (const method of Object.values(spec.methods)) implementations.set(method.method, method);
  }
  const serve = async ({ request, response, requestId, url, match, values }: RestRequest): Promise<void> => {
    const httpMethod = request.method ?? "GET";
    try {
      if (match === undefined) {
        throw new EmbedderError("ROUTE_NOT_FOUND", `no route for ${httpMethod} ${url.pathname}`, {
          details: { method: httpMethod, path: url.pathname },
        });
      }
      const implementation = implementations.get(match.route.method);
      if (implementation?.kind !== "unary" && implementation?.kind !== "server_streaming") {
        throw new EmbedderError("NOT_IMPLEMENTED", `${match.route.method.name} is not implemented over REST yet`, {
          details: { rpc: `${match.route.method.parent.typeName}/${match.route.method.name}` },
        });
      }
      const body = match.route.body === "" ? undefined : await readJsonRequest(request, options.maxBodyBytes);
      values.set(requestIdKey, requestId);
      const dialect = options.dialects?.find((candidate) => candidate.method === match.route.method && candidate.accepts(body));
      if (dialect !== undefined) await dialect.serve({ request, response, requestId, body, values });
      else await callRpc(options, implementation, match, { request, response, requestId, url, body, values });
    } catch (reason) {
      const error = EmbedderError.from(reason);
      logEmbedderError(options.logger, error, { requestId, method: httpMethod, path: url.pathname });
      options.onError?.(error);
      writeRestError(response, error, requestId);
    }
  };
  return { routes, serve };
}

interface RestCall {
  request: NodeRequest;
  response: NodeResponse;
  requestId: string;
  url: URL;
  body: JsonValue | undefined;
  values: ContextValues;
}

/**
 * Runs a unary or server-streaming rpc for a REST call: the request message from the path, body and
 * query, a handler context of protocol "rest", then the answer in the REST JSON mapping (unary) or as
 * NDJSON/SSE (writeRestStream); the context is ended once the answer is written.
 */
async function callRpc(
  options: RestHandlerOptions,
  implementation: Extract<MethodImplSpec, { kind: "unary" | "server_streaming" }>,
  match: RouteMatch,
  call: RestCall,
): Promise<void> {
  const { method } = implementation;
  const input = restInput(method, match, call);
  const context = restContext(method, call);
  try {
    if (implementation.kind === "server_streaming") {
      await writeRestStream({ ...call, logger: options.logger }, method.output, implementation.impl(input, context));
      return;
    }
    const output = create(method.output, await implementation.impl(input, context));
    const rendered = messageToRestJson(method.output, output);
    const body = match.route.responseBody === "" ? rendered : pickField(rendered, match.route.responseBody);
    const headers: Record<string, string> = {};
    context.responseHeader.forEach((value, name) => {
      headers[name] = value;
    });
    sendJson(call.response, options.statusOf?.(method, output) ?? 200, headers, body);
  } finally {
    context.abort(CALL_ENDED);
  }
}

/** The rpc's request message from the path variables, the body and the query. */
function restInput(method: DescMethod, match: RouteMatch, call: RestCall): Message {
  return restRequestToMessage(method.input, {
    body: call.body,
    bodyField: match.route.body,
    variables: match.variables,
    query: call.url.searchParams,
  });
}

/**
 * The reason a REST call's context is aborted with once its answer is written,
 * releasing its listeners; one shared value, since aborting without a reason
 * builds a DOMException (with its stack) on every call.
 */
const CALL_ENDED = new Error("the call ended");

/** A handler context of protocol "rest" whose signal aborts when the client goes away before the answer ends. */
function restContext(method: DescMethod, call: RestCall): ReturnType<typeof createHandlerContext> {
  const clientGone = new AbortController();
  call.response.once("close", () => {
    if (!call.response.writableFinished) clientGone.abort();
  });
  return createHandlerContext({
    service: method.parent,
    method,
    protocolName: "rest",
    requestMethod: call.request.method ?? "GET",
    url: call.url.toString(),
    requestSignal: clientGone.signal,
    requestHeader: webHeaders(call.request),
    contextValues: call.values,
  });
}

function pickField(json: JsonValue, name: string): JsonValue {
  return json !== null && typeof json === "object" && !Array.isArray(json) ? (json[name] ?? null) : null;
}

/** Node headers as Fetch headers, without HTTP/2 pseudo-headers. */
function webHeaders(request: NodeRequest): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) headers.append(name, item);
  }
  return headers;
}
