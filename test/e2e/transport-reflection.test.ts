import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SERVED_SERVICES } from "../../src/api/create-request-listener.js";
import {
  ServerReflection as ServerReflectionV1,
  ServerReflectionRequestSchema as RequestV1Schema,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import type { ServerReflectionResponse } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ServerReflectionV1alpha,
  ServerReflectionRequestSchema as RequestV1alphaSchema,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { file_sutra_embedder_v1_embedder } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { fakeVector, startTestServer } from "./transport-fixtures.js";
import type { TestServer } from "./transport-fixtures.js";

const run = promisify(execFile);
const BUF = new URL("../../node_modules/.bin/buf", import.meta.url).pathname;

let server: TestServer;

beforeEach(async () => {
  server = await startTestServer();
});

afterEach(async () => {
  await server.close();
});

type RequestInit = MessageInitShape<typeof RequestV1Schema>["messageRequest"];

/** Sends reflection requests on one v1 stream and returns the answers in order. */
async function reflect(...requests: RequestInit[]): Promise<ServerReflectionResponse[]> {
  const client = createClient(ServerReflectionV1, createGrpcTransport({ baseUrl: server.baseUrl }));
  const answers: ServerReflectionResponse[] = [];
  async function* outgoing() {
    for (const messageRequest of requests) yield create(RequestV1Schema, { host: "localhost", messageRequest });
  }
  for await (const answer of client.serverReflectionInfo(outgoing())) answers.push(answer);
  return answers;
}

function fileNames(answer: ServerReflectionResponse): string[] {
  if (answer.messageResponse.case !== "fileDescriptorResponse") throw new Error(`not a file answer: ${answer.messageResponse.case}`);
  return answer.messageResponse.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name);
}

const EMBEDDER_FILES = [
  "sutra/embedder/v1/embedder.proto",
  "google/api/annotations.proto",
  "google/api/http.proto",
  "google/protobuf/descriptor.proto",
  "google/protobuf/struct.proto",
  "google/protobuf/timestamp.proto",
];

describe("gRPC server reflection, written from the protobuf-es descriptors", () => {
  it("lists every served service", async () => {
    const [answer] = await reflect({ case: "listServices", value: "" });
    expect(answer.messageResponse.case).toBe("listServicesResponse");
    const names = answer.messageResponse.case === "listServicesResponse" ? answer.messageResponse.value.service.map((item) => item.name) : [];
    expect(names.sort()).toEqual([...SERVED_SERVICES].sort());
  });

  it("finds files by symbol (service, method, message, field, enum value) with their transitive dependencies", async () => {
    const answers = await reflect(
      { case: "fileContainingSymbol", value: "sutra.embedder.v1.EmbedderService" },
      { case: "fileContainingSymbol", value: "sutra.embedder.v1.EmbedderService.GenerateEmbeddings" },
      { case: "fileContainingSymbol", value: "sutra.embedder.v1.EmbeddingConfig.batch_size" },
      { case: "fileContainingSymbol", value: ".sutra.embedder.v1.QUANTIZATION_INT8" },
      { case: "fileContainingSymbol", value: "google.rpc.ErrorInfo" },
    );
    for (const answer of answers.slice(0, 4)) expect(fileNames(answer)).toEqual(EMBEDDER_FILES);
    expect(fileNames(answers[4])).toEqual(["google/rpc/error_details.proto", "google/protobuf/duration.proto"]);
    expect(answers.map((answer) => answer.originalRequest?.messageRequest.value)).toEqual([
      "sutra.embedder.v1.EmbedderService",
      "sutra.embedder.v1.EmbedderService.GenerateEmbeddings",
      "sutra.embedder.v1.EmbeddingConfig.batch_size",
      ".sutra.embedder.v1.QUANTIZATION_INT8",
      "google.rpc.ErrorInfo",
    ]);
  });

  it("sends the compiled descriptor unchanged", async () => {
    const [answer] = await reflect({ case: "fileByFilename", value: "sutra/embedder/v1/embedder.proto" });
    const bytes = answer.messageResponse.case === "fileDescriptorResponse" ? answer.messageResponse.value.fileDescriptorProto[0] : undefined;
    expect(Buffer.from(bytes ?? [])).toEqual(Buffer.from(toBinary(FileDescriptorProtoSchema, file_sutra_embedder_v1_embedder.proto)));
  });

  it("finds files by name and by extension, and lists a type's extension numbers", async () => {
    const [byName, byExtension, numbers, missingFile, missingSymbol] = await reflect(
      { case: "fileByFilename", value: "grpc/health/v1/health.proto" },
      { case: "fileContainingExtension", value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 72295728 } },
      { case: "allExtensionNumbersOfType", value: "google.protobuf.MethodOptions" },
      { case: "fileByFilename", value: "nope.proto" },
      { case: "fileContainingSymbol", value: "nope.Nothing" },
    );
    expect(fileNames(byName)).toEqual(["grpc/health/v1/health.proto"]);
    expect(fileNames(byExtension)).toEqual(["google/api/annotations.proto", "google/api/http.proto", "google/protobuf/descriptor.proto"]);
    expect(numbers.messageResponse).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "google.protobuf.MethodOptions", extensionNumber: [72295728] },
    });
    for (const missing of [missingFile, missingSymbol]) {
      expect(missing.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: 5 } });
    }
  });

  it("answers v1alpha the same way", async () => {
    const client = createClient(ServerReflectionV1alpha, createGrpcTransport({ baseUrl: server.baseUrl }));
    const answers = [];
    async function* outgoing() {
      yield create(RequestV1alphaSchema, { messageRequest: { case: "listServices", value: "" } });
      yield create(RequestV1alphaSchema, { messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.Health" } });
    }
    for await (const answer of client.serverReflectionInfo(outgoing())) answers.push(answer);
    expect(answers.map((answer) => answer.messageResponse.case)).toEqual(["listServicesResponse", "fileDescriptorResponse"]);
  });
});

describe("buf curl with server reflection only", () => {
  const buf = async (...args: string[]) => (await run(BUF, ["curl", "--http2-prior-knowledge", ...args], { timeout: 30_000 })).stdout;

  it.each(["grpc-v1", "grpc-v1alpha"])("lists the services with --reflect-protocol %s", async (protocol) => {
    const output = await buf("--protocol", "grpc", "--list-services", "--reflect-protocol", protocol, server.baseUrl);
    expect(output.trim().split("\n").sort()).toEqual([...SERVED_SERVICES].sort());
  });

  it("lists the methods", async () => {
    const output = await buf("--list-methods", server.baseUrl);
    expect(output).toContain("sutra.embedder.v1.EmbedderService/GenerateEmbeddings");
    expect(output).toContain("grpc.health.v1.Health/Watch");
  });

  it("calls GenerateEmbeddings over gRPC, resolving the schema by reflection", async () => {
    const output = await buf(
      "--protocol",
      "grpc",
      "-d",
      '{"texts": ["from buf"], "config": {"quantization": "QUANTIZATION_INT8"}}',
      `${server.baseUrl}/sutra.embedder.v1.EmbedderService/GenerateEmbeddings`,
    );
    const response = JSON.parse(output) as { embeddings: Array<{ values: number[] }>; modelInfo: { precision: string } };
    expect(Array.from(Float32Array.from(response.embeddings[0].values))).toEqual(Array.from(fakeVector("from buf")));
    expect(response.modelInfo.precision).toBe("int8");
  });

  it("shows the ErrorInfo detail of a failed call, decoded through reflection", async () => {
    const failed = await buf(
      "--protocol",
      "connect",
      "-d",
      '{"texts": ["a", ""]}',
      `${server.baseUrl}/sutra.embedder.v1.EmbedderService/GenerateEmbeddings`,
    ).then(
      () => undefined,
      (error: { stderr: string }) => JSON.parse(error.stderr) as { code: string; details: Array<{ type: string; debug: unknown }> },
    );
    expect(failed?.code).toBe("invalid_argument");
    expect(failed?.details[0]).toMatchObject({
      type: "google.rpc.ErrorInfo",
      debug: { reason: "EMPTY_INPUT", domain: "sutra.embedder.v1", metadata: { index: "1" } },
    });
  });
});
