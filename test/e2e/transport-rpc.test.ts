import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { CallOptions, Client, Transport } from "@connectrpc/connect";
import {
  createConnectTransport as createNodeConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport as createNodeGrpcWebTransport,
} from "@connectrpc/connect-node";
import {
  createConnectTransport as createWebConnectTransport,
  createGrpcWebTransport as createWebGrpcWebTransport,
} from "@connectrpc/connect-web";
import * as grpc from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ERROR_DOMAIN, ERROR_TABLE } from "../../src/api/error-table.js";
import { ERROR_REASONS } from "../../src/domain/errors.js";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import {
  EmbedderService,
  EmbeddingType,
  GenerateEmbeddingsRequestSchema,
  GenerateEmbeddingsResponseSchema,
  HardwareProfile,
  HealthStatus,
  ModelStatus,
} from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { FAKE_MODEL_ID, fakeEncodings, fakeVector, startTestServer } from "./transport-fixtures.js";
import type { TestServer } from "./transport-fixtures.js";

let server: TestServer;

beforeEach(async () => {
  server = await startTestServer();
});

afterEach(async () => {
  await server.close();
});

const TRANSPORTS: Array<[string, (baseUrl: string) => Transport]> = [
  ["gRPC (HTTP/2, connect-node)", (baseUrl) => createGrpcTransport({ baseUrl })],
  ["Connect JSON (HTTP/1.1, connect-node)", (baseUrl) => createNodeConnectTransport({ baseUrl, httpVersion: "1.1" })],
  ["Connect binary (HTTP/2, connect-node)", (baseUrl) => createNodeConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true })],
  ["gRPC-Web (HTTP/1.1, connect-node)", (baseUrl) => createNodeGrpcWebTransport({ baseUrl, httpVersion: "1.1" })],
  ["Connect JSON (fetch, connect-web)", (baseUrl) => createWebConnectTransport({ baseUrl })],
  ["gRPC-Web binary (fetch, connect-web)", (baseUrl) => createWebGrpcWebTransport({ baseUrl })],
];

/** Runs a call that must fail and returns its ConnectError. */
async function failure(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the call succeeded");
}

function expectReason(error: ConnectError, code: Code, reason: string): Record<string, string> {
  expect(error.code, error.message).toBe(code);
  const [info] = error.findDetails(ErrorInfoSchema);
  expect(info?.reason).toBe(reason);
  expect(info?.domain).toBe(ERROR_DOMAIN);
  return info.metadata;
}

describe.each(TRANSPORTS)("EmbedderService over %s", (_name, createTransport) => {
  let client: Client<typeof EmbedderService>;

  beforeEach(() => {
    client = createClient(EmbedderService, createTransport(server.baseUrl));
  });

  it("embeds texts exactly as the embedder does, with request id and timing headers", async () => {
    let headers = new Headers();
    const options: CallOptions = { headers: { "x-request-id": "rpc-test-1" }, onHeader: (received) => (headers = received) };
    const response = await client.generateEmbeddings({ texts: ["alpha", "beta"], model: "efficient" }, options);
    expect(response.embeddings.map((embedding) => embedding.values)).toEqual([Array.from(fakeVector("alpha")), Array.from(fakeVector("beta"))]);
    expect(response.modelInfo?.modelId).toBe(FAKE_MODEL_ID);
    expect(response.metadata?.requestId).toBe("rpc-test-1");
    expect(response.metadata?.hardwareProfile).toBe(HardwareProfile.MEDIUM);
    expect(headers.get("x-request-id")).toBe("rpc-test-1");
    expect(["x-total-time", "x-tokenization-time", "x-queue-time", "x-inference-time"].map((name) => headers.get(name))).toEqual([
      "12",
      "2",
      "2",
      "8",
    ]);
  });

  it("carries every requested encoding as bytes", async () => {
    const response = await client.generateEmbeddings({
      texts: ["enc"],
      dimensions: 128,
      embeddingTypes: [EmbeddingType.FLOAT, EmbeddingType.INT8, EmbeddingType.UBINARY],
    });
    const expected = fakeEncodings("enc", { dimensions: 128, embeddingTypes: ["float", "int8", "ubinary"] });
    const [embedding] = response.embeddings;
    expect(embedding.values).toEqual(Array.from(expected.float ?? []));
    expect(new Int8Array(embedding.int8.buffer, embedding.int8.byteOffset, embedding.int8.byteLength)).toEqual(expected.int8);
    expect(embedding.ubinary).toEqual(expected.ubinary);
    expect(embedding.uint8).toHaveLength(0);
  });

  it("lists models with filters and reports health", async () => {
    const all = await client.listModels({});
    expect(all.models.map((model) => [model.id, model.status])).toEqual([
      [FAKE_MODEL_ID, ModelStatus.LOADED],
      ["fake/big-1024", ModelStatus.AVAILABLE],
    ]);
    const filtered = await client.listModels({ hardwareProfile: HardwareProfile.H100 });
    expect(filtered.models.map((model) => model.id)).toEqual(["fake/big-1024"]);
    expect((await client.listModels({ dimensions: 64 })).models.map((model) => model.id)).toEqual([FAKE_MODEL_ID]);
    server.embedder.healthState = "degraded";
    const health = await client.getHealth({});
    expect(health.status).toBe(HealthStatus.DEGRADED);
    expect(health.checks?.issues).toEqual(["forced by the test"]);
  });

  it.each([
    ["no texts", { texts: [] }, "EMPTY_INPUT", {}],
    ["2049 texts", { texts: Array.from({ length: 2049 }, () => "t") }, "TOO_MANY_INPUTS", { count: "2049", limit: "2048" }],
    ["an empty string among texts", { texts: ["a", ""] }, "EMPTY_INPUT", { index: "1" }],
    ["dimensions 8000", { texts: ["a"], dimensions: 8000 }, "INVALID_DIMENSIONS", { dimensions: "8000" }],
    ["batch_size 300", { texts: ["a"], config: { batchSize: 300 } }, "INVALID_ARGUMENT", { field: "config.batch_size" }],
  ] satisfies Array<[string, MessageInitShape<typeof GenerateEmbeddingsRequestSchema>, string, Record<string, string>]>)(
    "rejects %s as INVALID_ARGUMENT with the reason, and stays healthy",
    async (_case, request, reason, metadata) => {
      const error = await failure(() => client.generateEmbeddings(request));
      expect(expectReason(error, Code.InvalidArgument, reason)).toMatchObject(metadata);
      expect(error.metadata.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
      expect((await client.getHealth({})).status).toBe(HealthStatus.HEALTHY);
      expect((await client.generateEmbeddings({ texts: ["ok"] })).embeddings).toHaveLength(1);
    },
  );

  it("rejects a message over the size limit as PAYLOAD_TOO_LARGE, and stays healthy", async () => {
    const error = await failure(() => client.generateEmbeddings({ texts: ["x".repeat(1024 * 1024 + 1)] }));
    expect(expectReason(error, Code.ResourceExhausted, "PAYLOAD_TOO_LARGE")).toEqual({
      limit: String(1024 * 1024),
      size: expect.stringMatching(/^\d+$/),
    });
    expect((await client.generateEmbeddings({ texts: ["after"] })).embeddings[0].values).toEqual(Array.from(fakeVector("after")));
    expect(server.embedder.requests.map((request) => request.texts)).toEqual([["after"]]);
  });

  it("passes OVERLOADED on with retry-after metadata and RetryInfo", async () => {
    const error = await failure(() => client.generateEmbeddings({ texts: ["a"], model: "fail:OVERLOADED" }));
    expectReason(error, Code.ResourceExhausted, "OVERLOADED");
    expect(error.metadata.get("retry-after")).toBe("3");
    expect(error.findDetails(RetryInfoSchema)[0].retryDelay?.seconds).toBe(3n);
  });

  it("answers the unimplemented rpcs with UNIMPLEMENTED / NOT_IMPLEMENTED", async () => {
    expectReason(await failure(() => client.downloadModel({ modelId: "org/name" })), Code.Unimplemented, "NOT_IMPLEMENTED");
  });

  it("streams GenerateEmbeddingsStream, one message per text with its index, and fails a bad request with its reason", async () => {
    const messages = [];
    for await (const message of client.generateEmbeddingsStream({ texts: ["one", "two words", "three"] })) messages.push(message);
    expect(messages.map((message) => message.index).sort()).toEqual([0, 1, 2]);
    for (const message of messages) {
      expect(message.embedding?.values).toEqual(Array.from(fakeVector(["one", "two words", "three"][message.index])));
      expect(message.modelInfo?.modelId).toBe(FAKE_MODEL_ID);
    }
    const empty = await failure(async () => {
      for await (const _message of client.generateEmbeddingsStream({ texts: ["a", ""] })) break;
    });
    expect(expectReason(empty, Code.InvalidArgument, "EMPTY_INPUT")).toEqual({ index: "1" });
  });

  it("turns an unknown model into NOT_FOUND / UNKNOWN_MODEL", async () => {
    const error = await failure(() => client.generateEmbeddings({ texts: ["a"], model: "nope" }));
    expect(expectReason(error, Code.NotFound, "UNKNOWN_MODEL")).toEqual({ model: "nope" });
  });
});

describe("gRPC error model", () => {
  it.each(ERROR_REASONS)("sends a pipeline %s with its code from the table and ErrorInfo", async (reason) => {
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: server.baseUrl }));
    const error = await failure(() => client.generateEmbeddings({ texts: ["a"], model: `fail:${reason}` }));
    expect(expectReason(error, ERROR_TABLE[reason].code, reason)).toEqual({ forced: "true" });
    expect(error.rawMessage).toBe(`forced ${reason}`);
  });

  it("maps a client deadline to DEADLINE_EXCEEDED and cancels the embedder's work", async () => {
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: server.baseUrl }));
    const error = await failure(() => client.generateEmbeddings({ texts: ["a"], model: "slow" }, { timeoutMs: 200 }));
    expect(error.code).toBe(Code.DeadlineExceeded);
    await expect.poll(() => server.embedder.cancelled).toBe(1);
    expect((await client.getHealth({})).status).toBe(HealthStatus.HEALTHY);
  });

  it("cancels the embedder's work when a client aborts", async () => {
    const client = createClient(EmbedderService, createNodeConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1" }));
    const abort = new AbortController();
    const call = failure(() => client.generateEmbeddings({ texts: ["a"], model: "slow" }, { signal: abort.signal }));
    await expect.poll(() => server.embedder.requests.length).toBe(1);
    abort.abort();
    expect((await call).code).toBe(Code.Canceled);
    await expect.poll(() => server.embedder.cancelled).toBe(1);
  });

  it("answers malformed and mistyped Connect JSON with invalid_argument (HTTP 400)", async () => {
    const url = `${server.baseUrl}/sutra.embedder.v1.EmbedderService/GenerateEmbeddings`;
    for (const body of ['{"texts": [', '{"texts": "a"}', '{"texts": ["a"], "dimensions": "x"}']) {
      const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { code: string }).code).toBe("invalid_argument");
    }
  });
});

describe("grpc-js generic client", () => {
  const path = "/sutra.embedder.v1.EmbedderService/GenerateEmbeddings";
  const serialize = (request: MessageInitShape<typeof GenerateEmbeddingsRequestSchema>) =>
    Buffer.from(toBinary(GenerateEmbeddingsRequestSchema, create(GenerateEmbeddingsRequestSchema, request)));
  const deserialize = (bytes: Buffer) => fromBinary(GenerateEmbeddingsResponseSchema, bytes);

  function call(client: grpc.Client, request: MessageInitShape<typeof GenerateEmbeddingsRequestSchema>, metadata = new grpc.Metadata()) {
    let headers = new grpc.Metadata();
    const result = new Promise<ReturnType<typeof deserialize>>((resolve, reject) => {
      const unary = client.makeUnaryRequest(path, serialize, deserialize, request, metadata, (error, response) =>
        error === null && response !== undefined ? resolve(response) : reject(error),
      );
      unary.on("metadata", (received) => (headers = received));
    });
    return { result, headers: () => headers };
  }

  function errorInfo(error: grpc.ServiceError) {
    const [statusBytes] = error.metadata.get("grpc-status-details-bin") as Buffer[];
    const status = fromBinary(StatusSchema, statusBytes);
    expect(status.code).toBe(error.code);
    const info = anyUnpack(status.details[0], ErrorInfoSchema);
    return info;
  }

  it("embeds, with the request id in the initial metadata", async () => {
    const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const metadata = new grpc.Metadata();
      metadata.set("x-request-id", "grpc-js-1");
      const { result, headers } = call(client, { texts: ["grpc-js"] }, metadata);
      expect((await result).embeddings[0].values).toEqual(Array.from(fakeVector("grpc-js")));
      expect(headers().get("x-request-id")).toEqual(["grpc-js-1"]);
      expect(headers().get("x-inference-time")).toEqual(["8"]);
    } finally {
      client.close();
    }
  });

  it("receives ErrorInfo in grpc-status-details-bin and retry-after in the trailers", async () => {
    const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const empty = (await call(client, { texts: ["a", ""] }).result.catch((error) => error)) as grpc.ServiceError;
      expect(empty.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(errorInfo(empty)).toMatchObject({ reason: "EMPTY_INPUT", domain: ERROR_DOMAIN, metadata: { index: "1" } });
      const overloaded = (await call(client, { texts: ["a"], model: "fail:RATE_LIMITED" }).result.catch((error) => error)) as grpc.ServiceError;
      expect(overloaded.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(errorInfo(overloaded)?.reason).toBe("RATE_LIMITED");
      expect(overloaded.metadata.get("retry-after")).toEqual(["3"]);
      const tooLarge = (await call(client, { texts: ["y".repeat(1100 * 1024)] }).result.catch((error) => error)) as grpc.ServiceError;
      expect(tooLarge.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(errorInfo(tooLarge)?.reason).toBe("PAYLOAD_TOO_LARGE");
      expect((await call(client, { texts: ["fine"] }).result).embeddings).toHaveLength(1);
    } finally {
      client.close();
    }
  });

  it("gets UNIMPLEMENTED for a method the server does not have", async () => {
    const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const error = await new Promise<grpc.ServiceError>((resolve) => {
        client.makeUnaryRequest("/sutra.embedder.v1.EmbedderService/NoSuchMethod", serialize, deserialize, { texts: ["a"] }, (received) => {
          if (received !== null) resolve(received);
        });
      });
      expect(error.code).toBe(grpc.status.UNIMPLEMENTED);
    } finally {
      client.close();
    }
  });
});

describe("grpc.health.v1", () => {
  it("checks the server and the embedder service, NOT_FOUND for others", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.baseUrl }));
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    server.embedder.healthState = "degraded";
    expect((await health.check({ service: "sutra.embedder.v1.EmbedderService" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    server.embedder.healthState = "unhealthy";
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    expect((await failure(() => health.check({ service: "other.Service" }))).code).toBe(Code.NotFound);
  });

  it("watches: the current status at once, then every change", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.baseUrl }));
    const abort = new AbortController();
    const seen: HealthCheckResponse_ServingStatus[] = [];
    const watching = (async () => {
      for await (const response of health.watch({ service: "sutra.embedder.v1.EmbedderService" }, { signal: abort.signal })) {
        seen.push(response.status);
        if (seen.length === 1) server.embedder.healthState = "unhealthy";
        if (seen.length === 2) server.embedder.healthState = "degraded";
        if (seen.length === 3) abort.abort();
      }
    })().catch((error: unknown) => ConnectError.from(error).code);
    expect(await watching).toBe(Code.Canceled);
    expect(seen).toEqual([
      HealthCheckResponse_ServingStatus.SERVING,
      HealthCheckResponse_ServingStatus.NOT_SERVING,
      HealthCheckResponse_ServingStatus.SERVING,
    ]);
  });

  it("watches an unknown service as SERVICE_UNKNOWN without ending the call", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.baseUrl }));
    const abort = new AbortController();
    const seen: HealthCheckResponse_ServingStatus[] = [];
    const watching = (async () => {
      for await (const response of health.watch({ service: "other.Service" }, { signal: abort.signal })) {
        seen.push(response.status);
        setTimeout(() => abort.abort(), 200);
      }
    })().catch((error: unknown) => ConnectError.from(error).code);
    expect(await watching).toBe(Code.Canceled);
    expect(seen).toEqual([HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN]);
  });

  it("ends open Watch streams when the server closes", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.baseUrl }));
    const seen: HealthCheckResponse_ServingStatus[] = [];
    const watching = (async () => {
      for await (const response of health.watch({ service: "" })) {
        seen.push(response.status);
        if (seen.length === 1) void server.close();
      }
      return "ended";
    })();
    expect(await watching).toBe("ended");
    expect(seen).toEqual([HealthCheckResponse_ServingStatus.SERVING]);
  });
});
