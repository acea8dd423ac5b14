import http from "node:http";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { EmbedderService } from "../gen/sutra/embedder/v1/embedder_pb.js";
import type { ServerUrls } from "./server-process.js";

/** The transports the service benchmark drives. */
export const TRANSPORTS = ["grpc", "connect-json", "rest"] as const;

/** One of {@link TRANSPORTS}. */
export type TransportName = (typeof TRANSPORTS)[number];

/** Human names for tables. */
export const TRANSPORT_LABELS: Record<TransportName, string> = {
  grpc: "gRPC (binary, HTTP/2)",
  "connect-json": "Connect JSON (HTTP/1.1)",
  rest: "REST (fetch, HTTP/1.1)",
};

/** A client that embeds texts over one transport; what the load generator calls. */
export interface LoadClient {
  /**
   * Sends one GenerateEmbeddings request and resolves once the whole answer is
   * decoded; rejects on an error or when the answer does not hold one vector per text.
   */
  embed(texts: string[]): Promise<void>;
  /** Closes the client's connections. */
  close(): void;
}

function checkCount(expected: number, received: number): void {
  if (received !== expected) throw new Error(`expected ${expected} embeddings, received ${received}`);
}

/**
 * Creates the client for `transport`, the way an application would use it:
 * - `grpc`: the generated Connect client on connect-node's gRPC transport (one HTTP/2 session, streams multiplexed);
 * - `connect-json`: the generated client on the Connect protocol with JSON over HTTP/1.1 (connect-node's default
 *   is binary: `useBinaryFormat: false` asks for JSON; a keep-alive agent, one socket per concurrent call);
 * - `rest`: `fetch` (undici, keep-alive) posting `{"texts": [...]}` to `/v1/embeddings` and parsing the JSON answer.
 */
export function createLoadClient(transport: TransportName, urls: ServerUrls): LoadClient {
  if (transport === "grpc") {
    const sessionManager = new Http2SessionManager(urls.http2);
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: urls.http2, sessionManager }));
    return {
      async embed(texts) {
        checkCount(texts.length, (await client.generateEmbeddings({ texts })).embeddings.length);
      },
      close: () => sessionManager.abort(),
    };
  }
  if (transport === "connect-json") {
    const agent = new http.Agent({ keepAlive: true });
    const client = createClient(EmbedderService, createConnectTransport({ baseUrl: urls.http1, httpVersion: "1.1", useBinaryFormat: false, nodeOptions: { agent } }));
    return {
      async embed(texts) {
        checkCount(texts.length, (await client.generateEmbeddings({ texts })).embeddings.length);
      },
      close: () => agent.destroy(),
    };
  }
  const url = `${urls.http1}/v1/embeddings`;
  return {
    async embed(texts) {
      const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ texts }) });
      const body = (await response.json()) as { embeddings?: unknown[]; error?: { code: string; message: string } };
      if (!response.ok) throw new Error(`HTTP ${response.status} ${body.error?.code ?? ""}: ${body.error?.message ?? ""}`);
      checkCount(texts.length, body.embeddings?.length ?? 0);
    },
    close: () => {},
  };
}
