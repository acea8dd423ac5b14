import type { Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { createSutraClient, type SutraClient, type SutraClientOptions } from "./create-sutra-client.js";
import { headerInterceptor } from "./headers.js";

export * from "./index.js";

/** Where and how a browser client connects. */
export interface WebClientOptions extends SutraClientOptions {
  /** The server, e.g. `https://embed.example.com` or `location.origin`. */
  baseUrl: string;
  /** Default `connect` (JSON or binary over fetch); `grpc-web` also works through gRPC-Web proxies. */
  protocol?: "connect" | "grpc-web";
  /** API key or JWT, sent as `authorization: Bearer <token>` (the server's CORS policy must allow it cross-origin). */
  token?: string;
  headers?: Record<string, string>;
  /** Connect protocol only: binary protobuf instead of JSON (default false, JSON reads best in devtools). */
  useBinaryFormat?: boolean;
  interceptors?: Interceptor[];
}

/**
 * Creates a SutraClient for the browser over connect-web (fetch). Every rpc
 * works but StreamEmbeddings, which needs a bidirectional HTTP/2 stream that
 * fetch cannot open; browsers stream with GenerateEmbeddingsStream
 * (`embedStream`) or the WebSocket route.
 */
export function createWebClient(options: WebClientOptions): SutraClient {
  const interceptors = [...(options.interceptors ?? []), headerInterceptor(options.token, options.headers)];
  const transport =
    options.protocol === "grpc-web"
      ? createGrpcWebTransport({ baseUrl: options.baseUrl, interceptors })
      : createConnectTransport({ baseUrl: options.baseUrl, interceptors, useBinaryFormat: options.useBinaryFormat ?? false });
  return createSutraClient(transport, options);
}
