import { Code, ConnectError, createConnectRouter, createContextValues } from "@connectrpc/connect";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { EmbedderError } from "../domain/errors.js";
import { limitBody, parseContentLength } from "./limit-body.js";
import type { NodeRequest, NodeResponse } from "./node-types.js";
import { requestIdKey } from "./request-context.js";
import { toConnectError } from "./to-connect-error.js";

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
 * leaves it alone otherwise (returns false), so REST can take it.
 */
export type ConnectHandler = (request: NodeRequest, response: NodeResponse, requestId: string) => boolean;

/**
 * Responses smaller than this go uncompressed even when the client accepts gzip: float vectors
 * shrink by about 5% under gzip, which cost about 95 µs of main-thread CPU per 2 KB response.
 */
const RESPONSE_COMPRESSION_MIN_BYTES = 4 * 1024 * 1024;

/**
 * The gRPC, gRPC-Web and Connect (JSON and binary) side of the server. It is
 * connectNodeAdapter's dispatch, rebuilt from connect-node's exported universal
 * helpers for two reasons the adapter has no hook for: every call gets the
 * request id as a context value, and an oversized request fails with our
 * PAYLOAD_TOO_LARGE error (ErrorInfo detail) instead of connect's bare
 * readMaxBytes error, which is raised before any interceptor runs. The limit
 * applies per message for enveloped protocols (so long-lived streams are not
 * capped in total) and to the whole body for Connect unary; connect's own
 * `readMaxBytes` stays set as the bound on decompressed messages.
 */
export function createConnectHandler(options: ConnectHandlerOptions): ConnectHandler {
  const router = createConnectRouter({
    readMaxBytes: options.maxBodyBytes,
    interceptors: options.interceptors,
    acceptCompression: [compressionGzip, compressionBrotli],
    compressMinBytes: RESPONSE_COMPRESSION_MIN_BYTES,
  });
  options.routes(router);
  const handlers = new Map(router.handlers.map((handler) => [handler.requestPath, handler]));
  return (request, response, requestId) => {
    const handler = handlers.get((request.url ?? "").split("?", 1)[0]);
    if (handler === undefined) return false;
    const universal = universalRequestFromNodeRequest(
      request,
      response,
      undefined,
      createContextValues().set(requestIdKey, requestId),
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
