import { create, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, JsonReadOptions, JsonValue } from "@bufbuild/protobuf";
import { base64Encode } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createConnectRouter, createContextValues } from "@connectrpc/connect";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { EmbedderError } from "../domain/errors.js";
import { connectionKey, connectionOf } from "./connection-context.js";
import { ERROR_TABLE } from "./error-table.js";
import { limitBody, parseContentLength } from "./limit-body.js";
import type { NodeRequest, NodeResponse } from "./node-types.js";
import { admittedKey, type EarlyAdmitted } from "./access-policy.js";
import { requestIdKey } from "./request-context.js";
import { toConnectError } from "./to-connect-error.js";
import { checkWellFormedJson, createWellFormedTextInterceptor, decodeProtobufStringsMarked, decodeUtf8Marked } from "./well-formed-text.js";

/** What the RPC side of the server needs. */
export interface ConnectHandlerOptions {
  /** Registers the services on the router. */
  routes: (router: ConnectRouter) => void;
  /** Largest request message (gRPC, gRPC-Web, Connect streaming) or body (Connect unary), in bytes. */
  maxBodyBytes: number;
  interceptors: Interceptor[];
  logger: Logger;
}

/**
 * Serves one request when its path is an rpc of the router (returns true) and
 * leaves it alone otherwise (returns false), so REST can take it. `admitted`
 * is the caller when the access check already ran (early gRPC admission).
 */
export type ConnectHandler = (request: NodeRequest, response: NodeResponse, requestId: string, admitted?: EarlyAdmitted) => boolean;

/**
 * Responses smaller than this go uncompressed even when the client accepts gzip: float vectors
 * shrink by about 5% under gzip, which cost about 95 µs of main-thread CPU per 2 KB response.
 */
const RESPONSE_COMPRESSION_MIN_BYTES = 4 * 1024 * 1024;

/**
 * The gRPC, gRPC-Web and Connect (JSON and binary) side of the server. It is
 * connectNodeAdapter's dispatch, rebuilt from connect-node's exported universal
 * helpers for two reasons the adapter has no hook for: every call gets the
 * request id and its connection (connectionKey) as context values, and an oversized request fails with our
 * PAYLOAD_TOO_LARGE error (ErrorInfo detail) instead of connect's bare
 * readMaxBytes error, which is raised before any interceptor runs. The limit
 * applies per message for enveloped protocols (so long-lived streams are not
 * capped in total) and to the whole body for Connect unary; connect's own
 * `readMaxBytes` stays set as the bound on decompressed messages.
 *
 * Request text is checked as on every other transport: binary messages decode
 * strings with decodeUtf8Marked (decodeProtobufStringsMarked) and Connect JSON
 * with wellFormedJsonDecoder, and the innermost interceptor
 * (createWellFormedTextInterceptor) refuses any string that is not
 * well-formed, naming its field and index. A Connect unary body that does not
 * decode as its protobuf message is INVALID_ARGUMENT (refuseUndecodableBody),
 * not connect's `internal`.
 */
export function createConnectHandler(options: ConnectHandlerOptions): ConnectHandler {
  decodeProtobufStringsMarked();
  const router = createConnectRouter({
    readMaxBytes: options.maxBodyBytes,
    interceptors: [...options.interceptors, createWellFormedTextInterceptor()],
    acceptCompression: [compressionGzip, compressionBrotli],
    compressMinBytes: RESPONSE_COMPRESSION_MIN_BYTES,
    jsonOptions: JSON_OPTIONS,
  });
  options.routes(router);
  const handlers = new Map(router.handlers.map((handler) => [handler.requestPath, handler]));
  return (request, response, requestId, admitted) => {
    const handler = handlers.get((request.url ?? "").split("?", 1)[0]);
    if (handler === undefined) return false;
    const universal = universalRequestFromNodeRequest(
      request,
      response,
      undefined,
      createContextValues().set(requestIdKey, requestId).set(connectionKey, connectionOf(request)).set(admittedKey, admitted),
    );
    const contentType = universal.header.get("content-type") ?? "";
    const declaredLength = parseContentLength(universal.header.get("content-length"));
    const enveloped = /^application\/(grpc(-web)?(\+\w+)?|connect\+\w+)(;|$)/i.test(contentType);
    if (!enveloped && declaredLength !== undefined && declaredLength > options.maxBodyBytes) {
      // connect would reject the declared length itself, without our error detail; the limiter below reports it instead.
      universal.header.delete("content-length");
    }
    const body = isByteStream(universal.body)
      ? withConnectErrors(
          limitBody(universal.body, { maxBytes: options.maxBodyBytes, enveloped, declaredLength }),
        )
      : universal.body;
    handler({ ...universal, body })
      .then((answer) => (enveloped ? answer : refuseUndecodableBody(answer, handler.method.input)))
      .then((answer) => universalResponseToNodeResponse(answer, response))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.logger.warn({ err: reason, requestId, procedure: handler.requestPath }, "rpc response failed");
      });
    return true;
  };
}

function isByteStream(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

/** Turns limitBody's domain error into the ConnectError the protocol handlers send as they are. */
async function* withConnectErrors(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield* body;
  } catch (error) {
    throw error instanceof EmbedderError ? toConnectError(error) : error;
  }
}

/** Lone surrogates spelled as JSON escapes (`\ud800`), which JSON.parse turns into text that is not well-formed. */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

/**
 * The text decoder of Connect JSON bodies: decodeUtf8Marked, and when the text
 * may hold a string that is not well-formed (bytes that were not UTF-8, or a
 * surrogate escape) its JSON is checked with checkWellFormedJson before
 * protobuf-es reads it, so the refusal names the field and index (protobuf-es
 * would only say "invalid UTF8"). connect sends a ConnectError thrown here as
 * it is; text that is not JSON is left for protobuf-es to refuse.
 */
const wellFormedJsonDecoder = {
  decode(bytes: Uint8Array = new Uint8Array(0)): string {
    const text = decodeUtf8Marked(bytes);
    if (text.isWellFormed() && !SURROGATE_ESCAPE.test(text)) return text;
    let json: JsonValue;
    try {
      json = JSON.parse(text) as JsonValue;
    } catch {
      return text;
    }
    try {
      checkWellFormedJson(json);
    } catch (error) {
      throw error instanceof EmbedderError ? toConnectError(error) : error;
    }
    return text;
  },
};

/**
 * The router's JSON options. connect's JSON serialization (the server's and
 * the client's alike) decodes with `textDecoder` when one is given; the
 * router's option type just does not name it.
 */
const JSON_OPTIONS: Partial<JsonReadOptions> & { textDecoder: typeof wellFormedJsonDecoder } = { textDecoder: wellFormedJsonDecoder };

/** How connect-es words its failure to decode a binary request message. */
const BINARY_PARSE_FAILURE = "parse binary: ";

/**
 * connect-es answers a Connect unary request whose body does not decode as its
 * protobuf message (JSON sent as `application/proto`, a body cut short) with
 * `internal`, HTTP 500, as if the server had failed: the parse runs before
 * any interceptor and its error is always `internal`. The client sent it, so
 * that answer becomes INVALID_ARGUMENT (400) in the Connect error format, with
 * the ErrorInfo toConnectError gives; any other answer passes as it is.
 */
async function refuseUndecodableBody(answer: UniversalServerResponse, schema: DescMessage): Promise<UniversalServerResponse> {
  if (answer.status !== 500 || !isByteStream(answer.body)) return answer;
  const chunks: Uint8Array[] = [];
  for await (const chunk of answer.body) chunks.push(chunk);
  const sent = Buffer.concat(chunks);
  let failure: { code?: unknown; message?: unknown } = {};
  try {
    failure = JSON.parse(sent.toString("utf8")) as typeof failure;
  } catch {
    // Not a Connect error body: passed on below as it came.
  }
  if (failure.code !== "internal" || typeof failure.message !== "string" || !failure.message.startsWith(BINARY_PARSE_FAILURE)) {
    return { ...answer, body: bytesOnce(sent) };
  }
  const error = toConnectError(new EmbedderError(
    "INVALID_ARGUMENT",
    `the request body is not a ${schema.typeName} protobuf message (${failure.message.slice(BINARY_PARSE_FAILURE.length)})`,
    { details: { field: "body" } },
  ));
  const details = error.details.flatMap((detail) => ("desc" in detail
    ? [{ type: detail.desc.typeName, value: base64Encode(toBinary(detail.desc, create(detail.desc, detail.value)), "std_raw") }]
    : []));
  const body = Buffer.from(JSON.stringify({ code: "invalid_argument", message: error.rawMessage, details }));
  const header = new Headers(answer.header);
  header.set("content-length", String(body.byteLength));
  return { ...answer, status: ERROR_TABLE.INVALID_ARGUMENT.httpStatus, header, body: bytesOnce(body) };
}

async function* bytesOnce(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}
