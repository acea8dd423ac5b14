import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { createEmbedRequest } from "../../domain/embed-request.js";
import { EmbedderError } from "../../domain/errors.js";
import type { EmbedRequest, Principal } from "../../domain/types.js";
import { decodeCl100kTokens } from "./decode-cl100k-tokens.js";

/** How the OpenAI dialect returns vectors: JSON floats, or base64 of little-endian float32. */
export type EncodingFormat = "float" | "base64";

/** An OpenAI embeddings request in domain terms. */
export interface OpenAiEmbeddingsRequest {
  request: EmbedRequest;
  encodingFormat: EncodingFormat;
}

/**
 * True when a body speaks the OpenAI dialect: a JSON object with its own
 * `input` field (`texts` selects the service's own dialect).
 */
export function isOpenAiBody(body: JsonValue | undefined): body is JsonObject {
  return body !== null && typeof body === "object" && !Array.isArray(body) && Object.hasOwn(body, "input");
}

function invalid(param: string, message: string): EmbedderError {
  return new EmbedderError("INVALID_ARGUMENT", message, { details: { field: param } });
}

function field(body: JsonObject, name: string): JsonValue | undefined {
  return Object.hasOwn(body, name) ? body[name] : undefined;
}

/**
 * Converts an OpenAI `POST /v1/embeddings` body into the pipeline's request.
 * `input` is a string, a list of strings, a token array or a list of token
 * arrays (OpenAI's cl100k_base ids, as LangChain and the OpenAI SDKs send
 * them: decoded to text by `decodeCl100kTokens`, so the request carries texts
 * only and the model tokenizes them as its own); `model` (a model id, alias or
 * preset; OpenAI's names alias the default model), `encoding_format` (`float`
 * default, or `base64`), `dimensions` and `user` are optional; other fields are
 * ignored. A value of the wrong type, or an id cl100k_base cannot decode, is
 * INVALID_ARGUMENT naming the field (OpenAI's `param`); an empty input is
 * EMPTY_INPUT. Token arrays are decoded after every other field is checked.
 * Inputs are truncated to the model's window at the end, as in the service's
 * own dialect.
 */
export async function parseOpenAiRequest(body: JsonObject, requestId: string, principal?: Principal): Promise<OpenAiEmbeddingsRequest> {
  const input = parseInput(field(body, "input") ?? null);
  const model = field(body, "model") ?? null;
  if (model !== null && typeof model !== "string") throw invalid("model", "model must be a string");
  const format = field(body, "encoding_format") ?? null;
  if (format !== null && format !== "float" && format !== "base64") {
    throw invalid("encoding_format", 'encoding_format must be "float" or "base64"');
  }
  const dimensions = field(body, "dimensions") ?? null;
  if (dimensions !== null && typeof dimensions !== "number") throw invalid("dimensions", "dimensions must be an integer");
  const user = field(body, "user") ?? null;
  if (user !== null && typeof user !== "string") throw invalid("user", "user must be a string");
  const texts = "tokenArrays" in input ? await decodeCl100kTokens(input.tokenArrays) : input.texts;
  const request = createEmbedRequest({
    requestId,
    texts,
    dimensions: dimensions ?? undefined,
    model: model ?? undefined,
    // The OpenAI dialect answers floats only, so a binary preset still computes them.
    embeddingTypes: ["float"],
    user: user === null || user === "" ? undefined : user,
    principal,
  });
  return { request, encodingFormat: format ?? "float" };
}

function parseInput(input: JsonValue): { texts: string[] } | { tokenArrays: JsonValue[][] } {
  if (typeof input === "string") return { texts: [input] };
  if (!Array.isArray(input)) {
    throw invalid("input", "input must be a string, an array of strings, an array of token ids or an array of token arrays");
  }
  if (input.length === 0) {
    throw new EmbedderError("EMPTY_INPUT", "input must not be empty", { details: { field: "input", count: 0 } });
  }
  if (input.every((item) => typeof item === "string")) return { texts: input as string[] };
  if (input.every((item) => typeof item === "number")) return { tokenArrays: [input] };
  if (input.every(Array.isArray)) return { tokenArrays: input as JsonValue[][] };
  throw invalid("input", "input must not mix strings, token ids and token arrays");
}
