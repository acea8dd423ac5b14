/**
 * Child process of the service benchmark: the bare echo servers that give the
 * transport limit E. No model, no pipeline: `GenerateEmbeddings` answers a
 * canned response, serialised again on every call. `--payload embedding` (the
 * default, what E is) answers one 512-float vector with the model info, usage
 * and metadata the service sends; `--payload small` answers an empty
 * embedding, to show what the vector's serialisation costs by itself.
 *
 * `--stack bare` (the default, what E is): servers without our framework stack,
 * driven by the same clients as the service:
 * - HTTP/2 cleartext: a plain `@grpc/grpc-js` server (gRPC);
 * - HTTP/1.1: a plain `node:http` handler (keep-alive on) for Connect unary
 *   (`POST /sutra.embedder.v1.EmbedderService/GenerateEmbeddings`, proto3 JSON
 *   or binary by content type, as the client sends) and REST (`POST /v1/embeddings`, the REST JSON mapping); each parses
 *   the request body as the service would.
 * `--stack connect`: a connect-node router on `http2.createServer` and
 * `http.createServer` instead (what E was before), to show the framework's cost.
 *
 * `--payload refuse` (bare stack only): the baseline of the overload flood
 * (bench/overload-flood.ts). The node:http handler answers every REST
 * `POST /v1/embeddings` at once with the service's refusal, 429 OVERLOADED with
 * `Retry-After: 1` and the error envelope the service sends (a constant
 * string), draining the request body unread (`request.resume()`, no parsing);
 * `GET /v1/health` answers 200 `{}`, as the flood client opens its connections
 * with health calls. Its other routes answer as with `--payload embedding`.
 */
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { create, fromBinary, fromJsonString, toBinary, toJsonString } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { EmbedderService, GenerateEmbeddingsRequestSchema, GenerateEmbeddingsResponseSchema } from "../gen/sutra/embedder/v1/embedder_pb.js";
import { messageToRestJson } from "../src/api/rest/rest-json.js";
import { serveBenchProtocol } from "./server-process.js";

const DIMENSIONS = 512;
const { values: options } = parseArgs({ options: { payload: { type: "string", default: "embedding" }, stack: { type: "string", default: "bare" } } });
if (options.payload !== "small" && options.payload !== "embedding" && options.payload !== "refuse") throw new Error(`--payload: expected small, embedding or refuse, got "${options.payload}"`);
if (options.stack !== "bare" && options.stack !== "connect") throw new Error(`--stack: expected bare or connect, got "${options.stack}"`);
if (options.payload === "refuse" && options.stack !== "bare") throw new Error("--payload refuse: only with --stack bare");
const refuse = options.payload === "refuse";
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
const cannedRestJson = messageToRestJson(GenerateEmbeddingsResponseSchema, canned);
const GENERATE_PATH = `/${EmbedderService.typeName}/${EmbedderService.method.generateEmbeddings.name}`;

/**
 * The body of the service's REST refusal when its queue is full (`restErrorEnvelope` of
 * src/api/rest/write-rest-error.ts for the batcher's OVERLOADED), fixed: `--payload refuse` sends it.
 */
const OVERLOADED_BODY = JSON.stringify({
  error: {
    code: "OVERLOADED",
    message: "the server is at capacity; retry shortly",
    type: "rate_limit_error",
    param: null,
    details: { queued: 8, limit: 8 },
    request_id: "00000000-0000-4000-8000-000000000000",
  },
});
const HEALTH_BODY = "{}";

/** Reads a whole request body. */
function readBody(request: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks)));
    request.on("error", reject);
  });
}

function answerJson(response: http.ServerResponse, body: string): void {
  response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  response.end(body);
}

const listen = (server: http.Server | http2.Http2Server): Promise<string> =>
  new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));

/** The bare stack: grpc-js for gRPC, node:http for Connect JSON and REST. */
async function startBare(): Promise<{ urls: { http2: string; http1: string }; stop(): Promise<void> }> {
  const grpcServer = new grpc.Server();
  grpcServer.addService(
    {
      generateEmbeddings: {
        path: GENERATE_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: (message: unknown) => Buffer.from(toBinary(GenerateEmbeddingsRequestSchema, message as never)),
        requestDeserialize: (bytes: Buffer) => fromBinary(GenerateEmbeddingsRequestSchema, bytes),
        responseSerialize: (message: unknown) => Buffer.from(toBinary(GenerateEmbeddingsResponseSchema, message as never)),
        responseDeserialize: (bytes: Buffer) => fromBinary(GenerateEmbeddingsResponseSchema, bytes),
      },
    },
    { generateEmbeddings: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, canned) },
  );
  const port = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  const http1Server = http.createServer({ keepAlive: true }, async (request, response) => {
    if (refuse && request.method === "POST" && request.url === "/v1/embeddings") {
      request.resume();
      response.writeHead(429, { "content-type": "application/json", "retry-after": "1", "content-length": Buffer.byteLength(OVERLOADED_BODY) });
      response.end(OVERLOADED_BODY);
      return;
    }
    if (refuse && request.method === "GET" && request.url === "/v1/health") {
      request.resume();
      answerJson(response, HEALTH_BODY);
      return;
    }
    const body = await readBody(request);
    if (request.method === "POST" && request.url === "/v1/embeddings") {
      JSON.parse(body.toString("utf8"));
      answerJson(response, JSON.stringify(cannedRestJson));
    } else if (request.method === "POST" && request.url === GENERATE_PATH && request.headers["content-type"] === "application/proto") {
      fromBinary(GenerateEmbeddingsRequestSchema, body);
      const answer = toBinary(GenerateEmbeddingsResponseSchema, canned);
      response.writeHead(200, { "content-type": "application/proto", "content-length": answer.byteLength });
      response.end(answer);
    } else if (request.method === "POST" && request.url === GENERATE_PATH) {
      fromJsonString(GenerateEmbeddingsRequestSchema, body.toString("utf8"));
      answerJson(response, toJsonString(GenerateEmbeddingsResponseSchema, canned));
    } else {
      response.writeHead(404).end();
    }
  });
  return {
    urls: { http2: `http://127.0.0.1:${port}`, http1: await listen(http1Server) },
    async stop() {
      http1Server.closeAllConnections();
      await Promise.all([
        new Promise<void>((resolve) => http1Server.close(() => resolve())),
        new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve())),
      ]);
    },
  };
}

/** The connect-node stack: one router on both HTTP versions, REST answered beside it. */
async function startConnect(): Promise<{ urls: { http2: string; http1: string }; stop(): Promise<void> }> {
  const adapter = connectNodeAdapter({
    routes: (router) => router.service(EmbedderService, { generateEmbeddings: () => canned }),
  });
  const http2Server = http2.createServer(adapter);
  const http1Server = http.createServer((request, response) => {
    if (request.method === "POST" && request.url === "/v1/embeddings") {
      void readBody(request).then(() => answerJson(response, JSON.stringify(cannedRestJson)));
      return;
    }
    adapter(request, response);
  });
  return {
    urls: { http2: await listen(http2Server), http1: await listen(http1Server) },
    async stop() {
      http1Server.closeAllConnections();
      const closed = (server: http.Server | http2.Http2Server) => new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([closed(http1Server), closed(http2Server)]);
    },
  };
}

const running = options.stack === "bare" ? await startBare() : await startConnect();
serveBenchProtocol(running.urls, () => running.stop());
