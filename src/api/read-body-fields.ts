import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { EmbedderError } from "../domain/errors.js";

/**
 * Typed readers of a JSON object body's fields for the hand-written routes.
 * Each returns `undefined` for a field that is absent or `null`, and throws
 * INVALID_ARGUMENT naming the field (`details.field`) for a value of the
 * wrong type, so every route refuses a bad body the same way.
 */
export interface BodyFields {
  /** Whether the body has the field at all (even as `null`). */
  has(field: string): boolean;
  string(field: string): string | undefined;
  /** A safe integer, at least `min` when given. */
  integer(field: string, min?: number): number | undefined;
  /** A list of strings; absent = `[]`. */
  strings(field: string): string[];
}

/**
 * Reads a request body that must be a JSON object (INVALID_ARGUMENT
 * otherwise, an empty body included) and returns its field readers.
 */
export function readBodyFields(body: JsonValue | undefined): BodyFields {
  if (body === null || body === undefined || typeof body !== "object" || Array.isArray(body)) {
    throw new EmbedderError("INVALID_ARGUMENT", "invalid request: the body must be a JSON object");
  }
  const object: JsonObject = body;
  const valueOf = (field: string): JsonValue => (Object.hasOwn(object, field) ? object[field] : null);
  return {
    has: (field) => Object.hasOwn(object, field),
    string(field) {
      const value = valueOf(field);
      if (value === null) return undefined;
      if (typeof value !== "string") throw invalidField(field, "must be a string");
      return value;
    },
    integer(field, min) {
      const value = valueOf(field);
      if (value === null) return undefined;
      if (typeof value !== "number" || !Number.isSafeInteger(value)) throw invalidField(field, "must be an integer");
      if (min !== undefined && value < min) throw invalidField(field, `must be at least ${min}`);
      return value;
    },
    strings(field) {
      const value = valueOf(field);
      if (value === null) return [];
      if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) throw invalidField(field, "must be a list of strings");
      return value as string[];
    },
  };
}

/** INVALID_ARGUMENT for one field of a hand-written route's body, naming the field in `details.field`. */
export function invalidField(field: string, why: string): EmbedderError {
  return new EmbedderError("INVALID_ARGUMENT", `invalid request: field "${field}" ${why}`, { details: { field } });
}
