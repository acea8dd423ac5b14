import { fromJson, ScalarType, toJson } from "@bufbuild/protobuf";
import type { DescEnum, DescField, DescMessage, JsonObject, JsonValue, MessageShape } from "@bufbuild/protobuf";
import { EmbedderError } from "../../domain/errors.js";
import { EmbeddingSchema } from "../../../gen/sutra/embedder/v1/embedder_pb.js";
import { enumValueFromWord, enumWord } from "../enum-words.js";
import { checkWellFormedJson } from "../well-formed-text.js";

/** What a REST request contributes to the rpc's request message. */
export interface RestRequestParts {
  /** The parsed JSON body, undefined when the route takes no body. */
  body: JsonValue | undefined;
  /** The route's `body`: "*" for the whole message, else the field the body fills. */
  bodyField: string;
  /** Path variables by field path, already percent-decoded. */
  variables: Record<string, string>;
  /** Query parameters; they fill fields neither the path nor the body set. */
  query: URLSearchParams;
}

/**
 * Builds the rpc request message of a REST call, google.api.http style: path
 * variables bind their fields, the body fills the whole message (`body: "*"`)
 * or one field, and query parameters (dotted field paths, repeated for lists)
 * fill the rest when the body does not cover the whole message; a path
 * variable wins over the same field in the body or query. Field names are
 * accepted in snake_case (the seed's spelling) and lowerCamelCase (proto3 JSON);
 * enum values as full names, numbers or lowercase words ("int8", "auto").
 * Unknown fields are ignored, as grpc-gateway does; a malformed value (wrong
 * type, unknown enum word, out-of-range number) is INVALID_ARGUMENT, and so is
 * a body string that is not well-formed (checkWellFormedJson: named by field
 * and index, before protobuf-es would refuse it without saying which).
 */
export function restRequestToMessage<Desc extends DescMessage>(schema: Desc, parts: RestRequestParts): MessageShape<Desc> {
  if (parts.body !== undefined) checkWellFormedJson(parts.body);
  let json: JsonObject = {};
  if (parts.bodyField === "*") {
    json = normalizeMessage(schema, parts.body === undefined ? {} : parts.body, "");
  } else if (parts.bodyField !== "") {
    const field = findField(schema, parts.bodyField);
    if (field !== undefined && parts.body !== undefined) json[field.jsonName] = normalizeField(field, parts.body, field.name);
  }
  if (parts.bodyField !== "*") {
    for (const [fieldPath, value] of parts.query) setFieldPath(schema, json, fieldPath, value, true);
  }
  for (const [fieldPath, value] of Object.entries(parts.variables)) setFieldPath(schema, json, fieldPath, value, false);
  try {
    return fromJson(schema, normalizeMessage(schema, json, ""));
  } catch (error) {
    throw new EmbedderError("INVALID_ARGUMENT", `invalid request: ${describeJsonError(error)}`, { cause: error });
  }
}

/** protobuf-es names fields by their full proto path; the client knows them by name. */
function describeJsonError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/cannot decode (?:field )?[\w.]+\.(\w+) from JSON/, 'cannot decode field "$1" from JSON');
}

function findField(schema: DescMessage, name: string): DescField | undefined {
  return schema.fields.find((field) => field.name === name || field.jsonName === name);
}

function invalid(path: string, why: string): EmbedderError {
  return new EmbedderError("INVALID_ARGUMENT", `invalid request: field "${path}" ${why}`, { details: { field: path } });
}

/**
 * Rewrites a JSON object into canonical proto3 JSON for `schema`: keys become
 * json names (unknown keys are dropped) and enum words become enum names.
 * Values of other types are left for fromJson to judge.
 */
function normalizeMessage(schema: DescMessage, json: JsonValue, path: string): JsonObject {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw path === ""
      ? new EmbedderError("INVALID_ARGUMENT", "invalid request: the body must be a JSON object")
      : invalid(path, "must be a JSON object");
  }
  const normalized: JsonObject = {};
  for (const [key, value] of Object.entries(json)) {
    const field = findField(schema, key);
    if (field === undefined) continue;
    normalized[field.jsonName] = normalizeField(field, value, path === "" ? field.name : `${path}.${field.name}`);
  }
  return normalized;
}

function normalizeField(field: DescField, value: JsonValue, path: string): JsonValue {
  if (value === null) return null;
  switch (field.fieldKind) {
    case "enum":
      return normalizeEnum(field.enum, value, path);
    case "message":
      return isWellKnown(field.message) ? value : normalizeMessage(field.message, value, path);
    case "list":
      if (!Array.isArray(value)) return value;
      if (field.listKind === "enum") return value.map((item) => normalizeEnum(field.enum, item, path));
      if (field.listKind === "message" && !isWellKnown(field.message)) {
        return value.map((item) => normalizeMessage(field.message, item, path));
      }
      return value;
    case "map":
      if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
      if (field.mapKind === "enum") {
        return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, normalizeEnum(field.enum, item, path)]));
      }
      if (field.mapKind === "message" && !isWellKnown(field.message)) {
        return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, normalizeMessage(field.message, item, path)]));
      }
      return value;
    default:
      return value;
  }
}

function normalizeEnum(schema: DescEnum, value: JsonValue, path: string): JsonValue {
  if (typeof value !== "string") return value;
  const found = enumValueFromWord(schema, value);
  if (found === undefined) {
    const words = schema.values.filter((item) => item.number !== 0).map(enumWord);
    throw invalid(path, `has an unknown value "${value}" (expected one of ${words.join(", ")})`);
  }
  return found.name;
}

function isWellKnown(schema: DescMessage): boolean {
  return schema.typeName.startsWith("google.protobuf.");
}

/**
 * Sets a field named by a dotted path from a string (a path variable or a
 * query parameter). Lists collect repeated parameters; booleans and numbers
 * are parsed so that `?dimensions=384&use_fp16=true` work. Unknown paths are
 * ignored; a path naming a message or map is INVALID_ARGUMENT.
 */
function setFieldPath(schema: DescMessage, json: JsonObject, fieldPath: string, text: string, append: boolean): void {
  const names = fieldPath.split(".");
  let target = json;
  let current = schema;
  for (const [index, name] of names.entries()) {
    const field = findField(current, name);
    if (field === undefined) return;
    if (index < names.length - 1) {
      if (field.fieldKind !== "message") throw invalid(fieldPath, "does not name a message field");
      const next = target[field.jsonName];
      const child: JsonObject = next !== null && typeof next === "object" && !Array.isArray(next) ? next : {};
      target[field.jsonName] = child;
      target = child;
      current = field.message;
      continue;
    }
    const value = parseText(field, text);
    if (field.fieldKind === "list" && field.listKind !== "message") {
      const existing = target[field.jsonName];
      target[field.jsonName] = append && Array.isArray(existing) ? [...existing, value] : [value];
    } else if (field.fieldKind === "scalar" || field.fieldKind === "enum") {
      target[field.jsonName] = value;
    } else {
      throw invalid(fieldPath, "cannot be set from the URL");
    }
  }
}

const NUMBER_TEXT = /^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function parseText(field: DescField, text: string): JsonValue {
  const scalar = field.fieldKind === "scalar" || field.fieldKind === "list" ? field.scalar : undefined;
  if (scalar === ScalarType.BOOL) return text === "true" ? true : text === "false" ? false : text;
  if (scalar !== undefined && scalar !== ScalarType.STRING && scalar !== ScalarType.BYTES && NUMBER_TEXT.test(text)) {
    return is64Bit(scalar) ? text : Number(text);
  }
  return text;
}

function is64Bit(scalar: ScalarType): boolean {
  return (
    scalar === ScalarType.INT64 ||
    scalar === ScalarType.UINT64 ||
    scalar === ScalarType.SINT64 ||
    scalar === ScalarType.FIXED64 ||
    scalar === ScalarType.SFIXED64
  );
}

/**
 * Renders a response message in the REST mapping of docs/REST.md: proto
 * field names (snake_case), every field present (defaults included, so the
 * shape is stable), enum values as lowercase words ("int8", "auto", "loaded"),
 * 64-bit integers as JSON numbers when they are exact, and each
 * `sutra.embedder.v1.Embedding` as a plain float array when it carries only
 * floats, else as an object with the encodings it carries (`values` for
 * floats; `int8`, `uint8`, `binary`, `ubinary` as arrays of integers, signed
 * for int8 and binary, unsigned for uint8 and ubinary), except packed bits answered alone (what
 * `ultra-efficient` and the binary switches return): `{"embedding_type": "binary", "binary": base64}`.
 */
export function messageToRestJson<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): JsonValue {
  const json = toJson(schema, message, { useProtoFieldName: true, alwaysEmitImplicit: true });
  return shapeMessage(schema, json);
}

function shapeMessage(schema: DescMessage, json: JsonValue): JsonValue {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return json;
  if (schema.typeName === EmbeddingSchema.typeName) return shapeEmbedding(json);
  const shaped: JsonObject = { ...json };
  for (const field of schema.fields) {
    if (field.name in shaped) shaped[field.name] = shapeField(field, shaped[field.name]);
  }
  return shaped;
}

function shapeField(field: DescField, value: JsonValue): JsonValue {
  switch (field.fieldKind) {
    case "enum":
      return shapeEnum(field.enum, value);
    case "message":
      return isWellKnown(field.message) ? value : shapeMessage(field.message, value);
    case "scalar":
      return shapeScalar(field.scalar, value);
    case "list": {
      if (!Array.isArray(value)) return value;
      if (field.listKind === "enum") return value.map((item) => shapeEnum(field.enum, item));
      if (field.listKind === "message") {
        return isWellKnown(field.message) ? value : value.map((item) => shapeMessage(field.message, item));
      }
      return value.map((item) => shapeScalar(field.scalar, item));
    }
    case "map": {
      if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
      const entries = Object.entries(value);
      if (field.mapKind === "enum") return Object.fromEntries(entries.map(([key, item]) => [key, shapeEnum(field.enum, item)]));
      if (field.mapKind === "message" && !isWellKnown(field.message)) {
        return Object.fromEntries(entries.map(([key, item]) => [key, shapeMessage(field.message, item)]));
      }
      if (field.mapKind === "scalar") {
        return Object.fromEntries(entries.map(([key, item]) => [key, shapeScalar(field.scalar, item)]));
      }
      return value;
    }
  }
}

function shapeEnum(schema: DescEnum, value: JsonValue): JsonValue {
  if (typeof value !== "string") return value;
  const found = schema.values.find((item) => item.name === value);
  return found === undefined ? value : enumWord(found);
}

function shapeScalar(scalar: ScalarType, value: JsonValue): JsonValue {
  if (typeof value === "string" && is64Bit(scalar)) {
    const number = Number(value);
    return Number.isSafeInteger(number) ? number : value;
  }
  return value;
}

const EMBEDDING_ENCODINGS = [
  { name: "int8", signed: true },
  { name: "uint8", signed: false },
  { name: "binary", signed: true },
  { name: "ubinary", signed: false },
] as const;

/** Encodings of packed sign bits: answered alone (the binary presets), they stay base64 with an `embedding_type`. */
const PACKED_BITS: ReadonlySet<string> = new Set(["binary", "ubinary"]);

function shapeEmbedding(json: JsonObject): JsonValue {
  const values = Array.isArray(json.values) ? json.values : [];
  const encoded = EMBEDDING_ENCODINGS.filter(({ name }) => typeof json[name] === "string" && json[name] !== "");
  if (encoded.length === 0) return values;
  const [only] = encoded;
  if (values.length === 0 && encoded.length === 1 && PACKED_BITS.has(only.name)) return { embedding_type: only.name, [only.name]: json[only.name] };
  const shaped: JsonObject = values.length > 0 ? { values } : {};
  for (const { name, signed } of encoded) {
    const bytes = Buffer.from(json[name] as string, "base64");
    shaped[name] = Array.from(signed ? new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes);
  }
  return shaped;
}
