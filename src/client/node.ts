import { Http2SessionManager, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { Interceptor } from "@connectrpc/connect";
import { createSutraClient, type SutraClient, type SutraClientOptions } from "./create-sutra-client.js";
import { headerInterceptor } from "./headers.js";

export * from "./index.js";

/** The wire protocols a Node client can speak; all three reach the same service on the server's one port. */
export type NodeProtocol = "grpc" | "connect" | "grpc-web";

/** Where and how a Node client connects. */
export interface NodeClientOptions extends SutraClientOptions {
  /** The server, e.g. `http://127.0.0.1:8080` (cleartext HTTP/2 with prior knowledge) or `https://...`. */
  baseUrl: string;
  /** Default `grpc` (HTTP/2; the only one that carries StreamEmbeddings). */
  protocol?: NodeProtocol;
  /** API key or JWT, sent as `authorization: Bearer <token>`. */
  token?: string;
  /** Extra request headers on every call (e.g. `x-provider`). */
  headers?: Record<string, string>;
  /** Connect protocol only: JSON instead of binary protobuf (default false). */
  useJson?: boolean;
  /** Run before the SDK's own header interceptor. */
  interceptors?: Interceptor[];
}

/** A Node client that also owns its HTTP/2 connection. */
export interface NodeSutraClient extends SutraClient {
  /** Closes the HTTP/2 connection (calls in flight fail); the client cannot be used after. */
  close(): void;
}

/**
 * Creates a SutraClient over connect-node: gRPC (default) or Connect over
 * HTTP/2, or gRPC-Web over HTTP/1.1. The HTTP/2 connection is the client's
 * own; `close()` ends it so a process can exit without waiting for the idle
 * timeout.
 */
export function createNodeClient(options: NodeClientOptions): NodeSutraClient {
  const protocol = options.protocol ?? "grpc";
  const interceptors = [...(options.interceptors ?? []), headerInterceptor(options.token, options.headers)];
  const sessionManager = protocol === "grpc-web" ? undefined : new Http2SessionManager(options.baseUrl);
  const transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl: options.baseUrl, sessionManager, interceptors })
      : protocol === "connect"
        ? createConnectTransport({ baseUrl: options.baseUrl, httpVersion: "2", sessionManager, interceptors, useBinaryFormat: !options.useJson })
        : createGrpcWebTransport({ baseUrl: options.baseUrl, httpVersion: "1.1", interceptors });
  return { ...createSutraClient(transport, options), close: () => sessionManager?.abort() };
}
