import { create, type DescEnum, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { createEmbedRequest } from "../domain/embed-request.js";
import { EmbedderError } from "../domain/errors.js";
import type {
  DimensionsPolicy,
  EmbedRequest,
  EmbedResult,
  EmbeddingType,
  EncodedEmbedding,
  EngineConfig,
  HardwareProfileName,
  HealthReport,
  ModelDescription,
  ModelDownloadStatus,
  QuantizationChoice,
  ServingSettings,
  TruncateMode,
} from "../domain/types.js";
import {
  DimensionsPolicySchema,
  EmbeddingSchema,
  EmbeddingTypeSchema,
  HardwareProfileSchema,
  HealthStatusSchema,
  ModelStatusSchema,
  QuantizationSchema,
  TruncateSchema,
} from "../../gen/sutra/embedder/v1/embedder_pb.js";
import type {
  DownloadModelResponseSchema,
  EmbeddingConfig,
  GenerateEmbeddingsRequest,
  GenerateEmbeddingsResponseSchema,
  GetHealthResponseSchema,
  ListModelsRequest,
  ListModelsResponseSchema,
  ModelSchema,
  ServingSettingsSchema,
} from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { residentMemoryMb } from "../observability/resident-memory.js";
import { enumValueFromWord, enumWordOf } from "./enum-words.js";

/**
 * Converts a GenerateEmbeddings request (from any transport) into the domain
 * request (createEmbedRequest fills what the message leaves unset; `caller`
 * adds the principal and the provider header). Enum values the schema does
 * not declare (possible on the wire, proto3 enums are open) are rejected with
 * INVALID_ARGUMENT; range checks are the front door's. GenerateEmbeddingsStream
 * requests, which have the same fields, convert here too.
 */
export function toEmbedRequest(
  message: Omit<GenerateEmbeddingsRequest, "$typeName">,
  requestId: string,
  caller: Pick<EmbedRequest, "principal" | "provider"> = {},
): EmbedRequest {
  const embeddingTypes = [
    ...new Set(
      message.embeddingTypes
        .map((type) => domainEnum<EmbeddingType>(EmbeddingTypeSchema, type, "embedding_types"))
        .filter((type) => type !== undefined),
    ),
  ];
  return createEmbedRequest({
    requestId,
    texts: message.texts,
    dimensions: message.dimensions,
    dimensionsPolicy: domainEnum<DimensionsPolicy>(DimensionsPolicySchema, message.dimensionsPolicy, "dimensions_policy"),
    model: message.model,
    config: toEngineConfig(message.config),
    instruction: message.instruction === "" ? undefined : message.instruction,
    promptName: message.promptName === "" ? undefined : message.promptName,
    truncate: domainEnum<TruncateMode>(TruncateSchema, message.truncate, "truncate"),
    normalize: message.normalize,
    embeddingTypes: embeddingTypes.length === 0 ? undefined : embeddingTypes,
    allowCrossModelFallback: message.allowCrossModelFallback,
    user: message.user === "" ? undefined : message.user,
    ...caller,
  });
}

function toEngineConfig(config: EmbeddingConfig | undefined): EngineConfig {
  if (config === undefined) return {};
  const engine: EngineConfig = {};
  const quantization =
    config.quantization === undefined
      ? undefined
      : domainEnum<QuantizationChoice>(QuantizationSchema, config.quantization, "config.quantization");
  const hardwareProfile =
    config.hardwareProfile === undefined
      ? undefined
      : domainEnum<HardwareProfileName>(HardwareProfileSchema, config.hardwareProfile, "config.hardware_profile");
  if (quantization !== undefined) engine.quantization = quantization;
  if (config.useFp16 !== undefined) engine.useFp16 = config.useFp16;
  if (config.batchSize !== undefined) engine.batchSize = config.batchSize;
  if (config.binaryQuantization !== undefined) engine.binaryQuantization = config.binaryQuantization;
  if (hardwareProfile !== undefined) engine.hardwareProfile = hardwareProfile;
  return engine;
}

/**
 * The domain word of an enum number: undefined for the zero (UNSPECIFIED)
 * value, INVALID_ARGUMENT for a number the schema does not declare. The domain
 * unions are spelled with exactly these words (a unit test checks it).
 */
function domainEnum<T extends string>(schema: DescEnum, number: number, field: string): T | undefined {
  if (number === 0) return undefined;
  const word = enumWordOf(schema, number);
  if (word === undefined) {
    throw new EmbedderError("INVALID_ARGUMENT", `${field} has an unknown value ${number}`, {
      details: { field, value: number },
    });
  }
  return word as T;
}

/** The enum number of a domain word, 0 (UNSPECIFIED) when the word is not declared. */
function protoEnum(schema: DescEnum, word: string): number {
  return enumValueFromWord(schema, word)?.number ?? 0;
}

/** Float32Array bytes are the platform's order; the protobuf wire format is little-endian. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * True when the answer to a call is written as binary protobuf (gRPC,
 * gRPC-Web and Connect with the proto codec): the answer's codec follows the
 * request's content type. JSON codecs and the REST routes answer false.
 */
export function answersInBinary(contentType: string | null): boolean {
  return LITTLE_ENDIAN && contentType !== null && /^application\/(grpc(-web)?(\+proto)?|proto|connect\+proto)(;|$)/i.test(contentType);
}

/**
 * Converts the pipeline's answer into a GenerateEmbeddingsResponse: each
 * encoding the request asked for goes into its `Embedding` field (signed
 * encodings as their two's-complement bytes), and the run, timings, usage and
 * metadata into their messages. With `binary` (see answersInBinary) float
 * vectors are carried as their packed bytes (toEmbeddingMessage).
 */
export function toGenerateEmbeddingsResponse(
  result: EmbedResult,
  requestId: string,
  binary = false,
): MessageInitShape<typeof GenerateEmbeddingsResponseSchema> {
  const { timings } = result;
  const count = result.embeddings.length;
  return {
    embeddings: result.embeddings.map((embedding) => toEmbeddingMessage(embedding, binary)),
    modelInfo: { ...result.run },
    performance: {
      latencyMs: timings.totalMs,
      throughputEmbPerSec: timings.totalMs > 0 ? (count * 1000) / timings.totalMs : 0,
      queueMs: timings.queueMs,
      inferenceMs: timings.inferenceMs,
      tokenizationMs: timings.tokenizationMs,
      memoryUsageMb: residentMemoryMb(),
      gpuUtilization: 0,
    },
    metadata: {
      requestId,
      timestamp: timestampNow(),
      hardwareProfile: protoEnum(HardwareProfileSchema, result.hardwareProfile),
      truncatedInputs: result.truncatedInputs,
      dimensionsPolicy: result.dimensionsPolicy,
    },
    usage: { promptTokens: result.promptTokens, totalTokens: result.promptTokens },
  };
}

/** Field number of `Embedding.values` (`repeated float values = 1`, packed). */
const VALUES_FIELD_NUMBER = 1;

/**
 * One embedding as an `Embedding` message: floats in `values`, other
 * encodings in their bytes fields. With `binary`, the floats are not copied
 * into `values` one by one: the float32 bytes already are the wire format of
 * the packed field (little-endian IEEE 754), so they travel as that field's
 * encoded bytes, which toBinary writes as they are (an unknown field to the
 * message, the `values` field to every reader). Only for answers written as
 * binary protobuf: JSON never sees them.
 */
export function toEmbeddingMessage(embedding: EncodedEmbedding, binary = false): MessageShape<typeof EmbeddingSchema> {
  const message = create(EmbeddingSchema, {
    values: embedding.float === undefined || binary ? [] : Array.from(embedding.float),
    int8: bytesOf(embedding.int8),
    uint8: bytesOf(embedding.uint8),
    binary: bytesOf(embedding.binary),
    ubinary: bytesOf(embedding.ubinary),
  });
  if (binary && embedding.float !== undefined && embedding.float.length > 0) {
    const bytes = new Uint8Array(embedding.float.buffer, embedding.float.byteOffset, embedding.float.byteLength);
    message.$unknown = [{ no: VALUES_FIELD_NUMBER, wireType: WireType.LengthDelimited, data: new BinaryWriter().bytes(bytes).finish() }];
  }
  return message;
}

function bytesOf(array: Int8Array | Uint8Array | undefined): Uint8Array {
  return array === undefined ? new Uint8Array(0) : new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** The ListModels filter of the domain: zero values do not filter. */
export function toModelFilter(message: ListModelsRequest): { dimensions?: number; hardwareProfile?: HardwareProfileName } {
  const hardwareProfile = domainEnum<HardwareProfileName>(HardwareProfileSchema, message.hardwareProfile, "hardware_profile");
  return {
    ...(message.dimensions === 0 ? {} : { dimensions: message.dimensions }),
    ...(hardwareProfile === undefined ? {} : { hardwareProfile }),
  };
}

/** Converts catalog entries into a ListModelsResponse. */
export function toListModelsResponse(models: ModelDescription[]): MessageInitShape<typeof ListModelsResponseSchema> {
  return { models: models.map(toModel) };
}

/** Converts one catalog entry into a Model message. */
export function toModel(model: ModelDescription): MessageInitShape<typeof ModelSchema> {
  return {
    ...model,
    status: protoEnum(ModelStatusSchema, model.status),
    hardwareProfiles: model.hardwareProfiles.map((profile) => protoEnum(HardwareProfileSchema, profile)),
    serving: model.serving === undefined ? undefined : toServingSettings(model.serving),
  };
}

/** Converts the tier and engine settings in force into a ServingSettings message. */
function toServingSettings(serving: ServingSettings): MessageInitShape<typeof ServingSettingsSchema> {
  return { ...serving, tier: protoEnum(HardwareProfileSchema, serving.tier) };
}

/** Converts a download's state into a DownloadModelResponse. */
export function toDownloadModelResponse(status: ModelDownloadStatus): MessageInitShape<typeof DownloadModelResponseSchema> {
  return {
    modelId: status.modelId,
    status: protoEnum(ModelStatusSchema, status.status),
    progress: status.progress,
    etaSeconds: status.etaSeconds,
    bytesDownloaded: BigInt(Math.trunc(status.bytesDownloaded)),
    bytesTotal: BigInt(Math.trunc(status.bytesTotal)),
    message: status.message,
  };
}

/** Converts the health report into a GetHealthResponse. */
export function toGetHealthResponse(report: HealthReport): MessageInitShape<typeof GetHealthResponseSchema> {
  return {
    status: protoEnum(HealthStatusSchema, report.state),
    checks: report.checks,
    performance: report.performance,
    cache: {
      enabled: report.cache.enabled,
      entries: BigInt(Math.trunc(report.cache.entries)),
      hits: BigInt(Math.trunc(report.cache.hits)),
      misses: BigInt(Math.trunc(report.cache.misses)),
      size: BigInt(Math.trunc(report.cache.entries)),
      maxSize: BigInt(Math.trunc(report.cache.maxEntries ?? 0)),
      ttlSeconds: report.cache.ttlSeconds ?? 0,
    },
    version: report.version,
    uptimeSeconds: report.uptimeSeconds,
    hardwareProfile: protoEnum(HardwareProfileSchema, report.hardwareProfile),
    executionProvider: report.executionProvider,
    defaultModel: report.defaultModel,
    serving: toServingSettings(report.serving),
  };
}
