import { create, createFileRegistry, setExtension } from "@bufbuild/protobuf";
import type { DescService, MessageInitShape } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  MethodOptionsSchema,
  timestampFromDate,
} from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { enumWord } from "../../src/api/enum-words.js";
import { messageToRestJson, restRequestToMessage } from "../../src/api/rest/rest-json.js";
import type { RestRequestParts } from "../../src/api/rest/rest-json.js";
import { createRouteTable, findRoute } from "../../src/api/rest/route-table.js";
import { EmbedderError } from "../../src/domain/errors.js";
import { DIMENSIONS_POLICIES } from "../../src/postprocess/resolve-dimensions.js";
import type { EmbeddingType, HardwareProfileName, QuantizationChoice, TruncateMode } from "../../src/domain/types.js";
import { file_google_api_annotations, http } from "../../gen/google/api/annotations_pb.js";
import { HttpRuleSchema } from "../../gen/google/api/http_pb.js";
import {
  DimensionsPolicySchema,
  DownloadModelRequestSchema,
  EmbedderService,
  EmbeddingSchema,
  EmbeddingTypeSchema,
  GenerateEmbeddingsRequestSchema,
  GenerateEmbeddingsResponseSchema,
  GetHealthResponseSchema,
  HardwareProfile,
  HardwareProfileSchema,
  HealthStatus,
  ListModelsRequestSchema,
  ModelStatusSchema,
  Quantization,
  QuantizationSchema,
  TruncateSchema,
  EmbeddingType as ProtoEmbeddingType,
} from "../../gen/sutra/embedder/v1/embedder_pb.js";

/** A service built at test time, so the route table is shown to read any descriptor's annotations. */
function thingsService(): DescService {
  const options = create(MethodOptionsSchema);
  setExtension(
    options,
    http,
    create(HttpRuleSchema, {
      pattern: { case: "get", value: "/v1/things/{thing_id}" },
      additionalBindings: [
        { pattern: { case: "custom", value: { kind: "HEAD", path: "/v2/{name=shelves/*/things/**}" } } },
        { pattern: { case: "post", value: "/v1/things/{thing_id}:touch" }, body: "note" },
      ],
    }),
  );
  const string = (name: string, number: number, jsonName: string) => ({
    name,
    number,
    jsonName,
    type: FieldDescriptorProto_Type.STRING,
    label: FieldDescriptorProto_Label.OPTIONAL,
  });
  const file = create(FileDescriptorProtoSchema, {
    name: "test/things.proto",
    package: "test",
    syntax: "proto3",
    dependency: ["google/api/annotations.proto"],
    messageType: [
      {
        name: "GetThingRequest",
        field: [
          string("thing_id", 1, "thingId"),
          string("name", 2, "name"),
          { ...string("note", 3, "note"), type: FieldDescriptorProto_Type.MESSAGE, typeName: ".test.Note" },
          { ...string("tags", 4, "tags"), label: FieldDescriptorProto_Label.REPEATED },
        ],
      },
      { name: "Note", field: [string("text", 1, "text")] },
      { name: "Thing", field: [string("name", 1, "name")] },
    ],
    service: [
      {
        name: "Things",
        method: [{ name: "GetThing", inputType: ".test.GetThingRequest", outputType: ".test.Thing", options }],
      },
    ],
  });
  const registry = createFileRegistry(file, (name) =>
    name === "google/api/annotations.proto" ? file_google_api_annotations : undefined,
  );
  const service = registry.getService("test.Things");
  if (service === undefined) throw new Error("test service missing");
  return service;
}

function invalidArgument(run: () => unknown): EmbedderError {
  try {
    run();
  } catch (error) {
    if (error instanceof EmbedderError && error.reason === "INVALID_ARGUMENT") return error;
    throw error;
  }
  throw new Error("expected INVALID_ARGUMENT");
}

const noQuery = new URLSearchParams();
const bodyParts = (body: RestRequestParts["body"]): RestRequestParts => ({ body, bodyField: "*", variables: {}, query: noQuery });

describe("route table from google.api.http annotations", () => {
  const routes = createRouteTable([EmbedderService]);
  const summary = routes.map((route) => `${route.httpMethod} ${route.template.source} -> ${route.method.name} body=${route.body}`);

  it("has every annotated rpc of EmbedderService, under /v1 and /api/v1", () => {
    expect(summary).toEqual([
      "POST /v1/embeddings -> GenerateEmbeddings body=*",
      "POST /api/v1/embeddings -> GenerateEmbeddings body=*",
      "POST /v1/embeddings/stream -> GenerateEmbeddingsStream body=*",
      "POST /api/v1/embeddings/stream -> GenerateEmbeddingsStream body=*",
      "GET /v1/models -> ListModels body=",
      "GET /api/v1/models -> ListModels body=",
      "GET /v1/models/{model_id} -> GetModel body=",
      "GET /api/v1/models/{model_id} -> GetModel body=",
      "POST /v1/models/{model_id}/download -> DownloadModel body=*",
      "POST /api/v1/models/{model_id}/download -> DownloadModel body=*",
      "GET /v1/health -> GetHealth body=",
      "GET /api/v1/health -> GetHealth body=",
      "POST /v1/jobs -> CreateJob body=*",
      "POST /api/v1/jobs -> CreateJob body=*",
      "POST /v1/media/embeddings/jobs -> CreateJob body=*",
      "POST /api/v1/media/embeddings/jobs -> CreateJob body=*",
      "GET /v1/jobs/{job_id} -> GetJob body=",
      "GET /api/v1/jobs/{job_id} -> GetJob body=",
      "GET /v1/media/embeddings/jobs/{job_id} -> GetJob body=",
      "GET /api/v1/media/embeddings/jobs/{job_id} -> GetJob body=",
      "GET /v1/jobs -> ListJobs body=",
      "GET /api/v1/jobs -> ListJobs body=",
      "GET /v1/media/embeddings/jobs -> ListJobs body=",
      "GET /api/v1/media/embeddings/jobs -> ListJobs body=",
      "POST /v1/jobs/{job_id}/cancel -> CancelJob body=*",
      "POST /api/v1/jobs/{job_id}/cancel -> CancelJob body=*",
      "POST /v1/media/embeddings/jobs/{job_id}/cancel -> CancelJob body=*",
      "POST /api/v1/media/embeddings/jobs/{job_id}/cancel -> CancelJob body=*",
      "GET /v1/jobs/{job_id}/results -> GetJobResults body=",
      "GET /api/v1/jobs/{job_id}/results -> GetJobResults body=",
      "GET /v1/media/embeddings/jobs/{job_id}/results -> GetJobResults body=",
      "GET /api/v1/media/embeddings/jobs/{job_id}/results -> GetJobResults body=",
    ]);
  });

  it("finds routes by method and path, decoding %2F in path variables", () => {
    const found = findRoute(routes, "POST", "/api/v1/models/BAAI%2Fbge-small-en-v1.5/download");
    expect(found?.route.method).toBe(EmbedderService.method.downloadModel);
    expect(found?.variables).toEqual({ model_id: "BAAI/bge-small-en-v1.5" });
    expect(findRoute(routes, "GET", "/v1/health")?.route.method).toBe(EmbedderService.method.getHealth);
    expect(findRoute(routes, "GET", "/v1/embeddings")).toBeUndefined();
    expect(findRoute(routes, "POST", "/v1/embeddings/")).toBeUndefined();
    expect(findRoute(routes, "GET", "/api/v2/health")).toBeUndefined();
  });

  it("reads any service's rules, additional bindings and custom methods included", () => {
    const things = createRouteTable([thingsService()]);
    expect(things.map((route) => `${route.httpMethod} ${route.template.source} body=${route.body}`)).toEqual([
      "GET /v1/things/{thing_id} body=",
      "GET /api/v1/things/{thing_id} body=",
      "HEAD /v2/{name=shelves/*/things/**} body=",
      "POST /v1/things/{thing_id}:touch body=note",
      "POST /api/v1/things/{thing_id}:touch body=note",
    ]);
    expect(findRoute(things, "HEAD", "/v2/shelves/s1/things/a/b%2Fc")?.variables).toEqual({ name: "shelves/s1/things/a/b%2Fc" });
    expect(findRoute(things, "POST", "/v1/things/t%2F1:touch")?.variables).toEqual({ thing_id: "t/1" });
  });

  it("fills a body field from the body and the other fields from path and query", () => {
    const input = thingsService().methods[0].input;
    const message = restRequestToMessage(input, {
      body: { text: "hello", ignored: 1 },
      bodyField: "note",
      variables: { thing_id: "t/1" },
      query: new URLSearchParams("name=n1&tags=a&tags=b&thingId=ignored-by-path"),
    });
    expect(message).toMatchObject({ thingId: "t/1", name: "n1", tags: ["a", "b"], note: { text: "hello" } });
  });
});

describe("REST request mapping", () => {
  it("accepts the seed OpenAPI example request", () => {
    const message = restRequestToMessage(
      GenerateEmbeddingsRequestSchema,
      bodyParts({
        texts: ["Hello world", "Embeddings"],
        model: "efficient",
        dimensions: 0,
        config: { quantization: "int8", use_fp16: false, batch_size: 32 },
      }),
    );
    expect(message.texts).toEqual(["Hello world", "Embeddings"]);
    expect(message.model).toBe("efficient");
    expect(message.config?.quantization).toBe(Quantization.INT8);
    expect(message.config?.useFp16).toBe(false);
    expect(message.config?.batchSize).toBe(32);
    expect(message.config?.hardwareProfile).toBeUndefined();
  });

  it("accepts proto3 JSON names, enum names, enum numbers and word spellings alike", () => {
    const message = restRequestToMessage(
      GenerateEmbeddingsRequestSchema,
      bodyParts({
        texts: ["a"],
        embeddingTypes: ["EMBEDDING_TYPE_INT8", "ubinary", 1, "Binary"],
        config: { useFp16: true, batchSize: "16", hardwareProfile: "HARDWARE_PROFILE_H100", quantization: 3 },
        truncate: "start",
        prompt_name: "query",
      }),
    );
    expect(message.embeddingTypes).toEqual([
      ProtoEmbeddingType.INT8,
      ProtoEmbeddingType.UBINARY,
      ProtoEmbeddingType.FLOAT,
      ProtoEmbeddingType.BINARY,
    ]);
    expect(message.config).toMatchObject({ useFp16: true, batchSize: 16, hardwareProfile: HardwareProfile.H100, quantization: Quantization.INT4 });
    expect(message.promptName).toBe("query");
  });

  it("ignores unknown fields", () => {
    expect(restRequestToMessage(GenerateEmbeddingsRequestSchema, bodyParts({ texts: ["a"], priority: "high" })).texts).toEqual(["a"]);
  });

  it("rejects unknown enum words, naming the field and the words it takes", () => {
    const error = invalidArgument(() =>
      restRequestToMessage(GenerateEmbeddingsRequestSchema, bodyParts({ texts: ["a"], config: { quantization: "int9" } })),
    );
    expect(error.details).toEqual({ field: "config.quantization" });
    expect(error.message).toContain("none, int8, int4, binary");
  });

  it.each([
    ["texts as a string", { texts: "hello" }],
    ["dimensions as a word", { texts: ["a"], dimensions: "many" }],
    ["dimensions negative", { texts: ["a"], dimensions: -1 }],
    ["config as a number", { texts: ["a"], config: 5 }],
    ["use_fp16 as a string", { texts: ["a"], config: { use_fp16: "yes" } }],
    ["a number among texts", { texts: ["a", 3] }],
  ])("rejects %s as INVALID_ARGUMENT", (_name, body) => {
    const error = invalidArgument(() => restRequestToMessage(GenerateEmbeddingsRequestSchema, bodyParts(body)));
    expect(error.message).toMatch(/^invalid request/);
  });

  it.each([[[1, 2]], ["text"], [null]])("rejects the non-object body %j", (body) => {
    invalidArgument(() => restRequestToMessage(GenerateEmbeddingsRequestSchema, bodyParts(body)));
  });

  it("takes an empty body as an empty request", () => {
    expect(restRequestToMessage(GenerateEmbeddingsRequestSchema, bodyParts(undefined)).texts).toEqual([]);
  });

  it("reads GET query parameters in both spellings, enums as words or names", () => {
    const fromWords = restRequestToMessage(ListModelsRequestSchema, {
      body: undefined,
      bodyField: "",
      variables: {},
      query: new URLSearchParams("dimensions=384&hardware_profile=auto"),
    });
    expect(fromWords).toMatchObject({ dimensions: 384, hardwareProfile: HardwareProfile.AUTO });
    const fromNames = restRequestToMessage(ListModelsRequestSchema, {
      body: undefined,
      bodyField: "",
      variables: {},
      query: new URLSearchParams("hardwareProfile=HARDWARE_PROFILE_SERVER"),
    });
    expect(fromNames.hardwareProfile).toBe(HardwareProfile.SERVER);
    invalidArgument(() =>
      restRequestToMessage(ListModelsRequestSchema, { body: undefined, bodyField: "", variables: {}, query: new URLSearchParams("dimensions=abc") }),
    );
  });

  it("lets a path variable win over the same field in the body", () => {
    const message = restRequestToMessage(DownloadModelRequestSchema, {
      body: { model_id: "other", revision: "main" },
      bodyField: "*",
      variables: { model_id: "org/name" },
      query: noQuery,
    });
    expect(message).toMatchObject({ modelId: "org/name", revision: "main" });
  });
});

describe("REST response mapping", () => {
  const response = (embeddings: MessageInitShape<typeof EmbeddingSchema>[]) =>
    create(GenerateEmbeddingsResponseSchema, {
      embeddings,
      modelInfo: { modelId: "m", dimensions: 3 },
      metadata: { requestId: "r1", hardwareProfile: HardwareProfile.AUTO, timestamp: timestampFromDate(new Date("2025-01-02T03:04:05Z")) },
      usage: { promptTokens: 7, totalTokens: 7 },
    });

  it("renders float-only embeddings as plain arrays with snake_case names and enum words", () => {
    const json = messageToRestJson(GenerateEmbeddingsResponseSchema, response([{ values: [0.5, -0.25, 1] }, { values: [0, 1, 0] }]));
    expect(json).toMatchObject({
      embeddings: [
        [0.5, -0.25, 1],
        [0, 1, 0],
      ],
      model_info: { model_id: "m", dimensions: 3, quality_score: 0, execution_provider: "" },
      metadata: { request_id: "r1", hardware_profile: "auto", timestamp: "2025-01-02T03:04:05Z", truncated_inputs: [] },
      usage: { prompt_tokens: 7, total_tokens: 7 },
    });
  });

  it("renders other encodings as an object per embedding, signed or unsigned as the type says", () => {
    const json = messageToRestJson(
      GenerateEmbeddingsResponseSchema,
      response([
        {
          values: [0.5],
          int8: Uint8Array.of(0x7f, 0x80, 0xff),
          ubinary: Uint8Array.of(0xa0, 0x01),
          binary: Uint8Array.of(0x20, 0x81),
          uint8: Uint8Array.of(0, 255),
        },
      ]),
    ) as { embeddings: unknown[] };
    expect(json.embeddings).toEqual([{ values: [0.5], int8: [127, -128, -1], uint8: [0, 255], binary: [32, -127], ubinary: [160, 1] }]);
    const withoutFloats = messageToRestJson(GenerateEmbeddingsResponseSchema, response([{ int8: Uint8Array.of(1) }])) as {
      embeddings: unknown[];
    };
    expect(withoutFloats.embeddings).toEqual([{ int8: [1] }]);
  });

  it("renders 64-bit counters as numbers and the health state as a word", () => {
    const json = messageToRestJson(
      GetHealthResponseSchema,
      create(GetHealthResponseSchema, { status: HealthStatus.DEGRADED, cache: { enabled: true, entries: 12n, hits: 2n ** 60n } }),
    );
    expect(json).toMatchObject({ status: "degraded", cache: { enabled: true, entries: 12, hits: "1152921504606846976", misses: 0 } });
  });
});

describe("enum words", () => {
  const words = (schema: { values: Parameters<typeof enumWord>[0][] }) => schema.values.filter((value) => value.number !== 0).map(enumWord);

  it("spell the domain unions exactly", () => {
    const quantization = ["none", "int8", "int4", "binary"] as const satisfies readonly QuantizationChoice[];
    const profiles = ["auto", "minimal", "low", "medium", "high", "extreme", "desktop", "server", "h100"] as const satisfies readonly HardwareProfileName[];
    const truncate = ["end", "start", "none"] as const satisfies readonly TruncateMode[];
    const types = ["float", "int8", "uint8", "binary", "ubinary"] as const satisfies readonly EmbeddingType[];
    const everyProfileListed: Exclude<HardwareProfileName, (typeof profiles)[number]> extends never ? true : false = true;
    const everyTypeListed: Exclude<EmbeddingType, (typeof types)[number]> extends never ? true : false = true;
    expect(everyProfileListed && everyTypeListed).toBe(true);
    expect(words(QuantizationSchema)).toEqual(quantization);
    expect(words(HardwareProfileSchema)).toEqual(profiles);
    expect(words(TruncateSchema)).toEqual(truncate);
    expect(words(EmbeddingTypeSchema)).toEqual(types);
    expect(words(DimensionsPolicySchema)).toEqual(DIMENSIONS_POLICIES);
    expect(words(ModelStatusSchema)).toEqual(["available", "downloading", "ready", "loaded", "failed"]);
  });
});
