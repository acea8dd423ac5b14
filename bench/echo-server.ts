/**
 * Child process of the service benchmark: the bare echo servers that give the
 * transport limit E. No model, no pipeline: `GenerateEmbeddings` answers a
 * canned response. `--payload small` (the default, what E is) answers one
 * empty embedding with the model info, usage and metadata the service sends, so
 * E is the cost of the transport, the framework and the client, and the
 * service's own work on the embedding (serialising 512 floats, compressing
 * them) counts as service overhead. `--payload embedding` answers one 512-float
 * vector instead, to show what that serialisation costs by itself.
 *
 * - HTTP/2 cleartext: a connect-node router (gRPC, Connect) on `http2.createServer`.
 * - HTTP/1.1: the same router (Connect JSON) on `http.createServer`, plus
 *   `POST /v1/embeddings`, which reads the body and writes the canned answer in
 *   the REST JSON mapping (serialised once at start).
 */
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { EmbedderService, GenerateEmbeddingsResponseSchema } from "../gen/sutra/embedder/v1/embedder_pb.js";
import { messageToRestJson } from "../src/api/rest/rest-json.js";
import { serveBenchProtocol } from "./server-process.js";

const DIMENSIONS = 512;
const { values: options } = parseArgs({ options: { payload: { type: "string", default: "small" } } });
if (options.payload !== "small" && options.payload !== "embedding") throw new Error(`--payload: expected small or embedding, got "${options.payload}"`);
const values = options.payload === "small" ? [] : Array.from({ length: DIMENSIONS }, (_, index) => Math.sin(index + 1) / Math.sqrt(DIMENSIONS / 2));

const canned = create(GenerateEmbeddingsResponseSchema, {
  embeddings: [{ values }],
  modelInfo: {
    modelId: "universal-sentence-encoder-lite",
    name: "Universal Sentence Encoder Lite",
    dimensions: DIMENSIONS,
    sizeMb: 26.1,
    precision: "fp32",
    executionProvider: "cpu",
    provider: "local",
  },
  performance: { latencyMs: 1.5, throughputEmbPerSec: 600, queueMs: 0.2, inferenceMs: 1 },
  metadata: { requestId: "00000000-0000-4000-8000-000000000000", timestamp: timestampFromMs(Date.UTC(2025, 0, 1)), dimensionsPolicy: "native" },
  usage: { promptTokens: 11, totalTokens: 11 },
});
const cannedRestBody = Buffer.from(JSON.stringify(messageToRestJson(GenerateEmbeddingsResponseSchema, canned)));

const adapter = connectNodeAdapter({
  routes: (router) => router.service(EmbedderService, { generateEmbeddings: () => canned }),
});

const http2Server = http2.createServer(adapter);
const http1Server = http.createServer((request, response) => {
  if (request.method === "POST" && request.url === "/v1/embeddings") {
    request.on("data", () => {});
    request.on("end", () => {
      response.writeHead(200, { "content-type": "application/json", "content-length": cannedRestBody.length });
      response.end(cannedRestBody);
    });
    return;
  }
  adapter(request, response);
});

const listen = (server: http.Server | http2.Http2Server): Promise<string> =>
  new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));

const urls = { http2: await listen(http2Server), http1: await listen(http1Server) };
serveBenchProtocol(urls, async () => {
  http1Server.closeAllConnections();
  const closed = (server: http.Server | http2.Http2Server) => new Promise<void>((resolve) => server.close(() => resolve()));
  await Promise.all([closed(http1Server), closed(http2Server)]);
});
