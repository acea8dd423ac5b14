import type { EmbedRequest, EmbeddingType } from "./types.js";

/**
 * The output a request gets when its client names no `embedding_types`: floats. Kept as one
 * frozen array so the engine can tell it from a client's explicit `["float"]`: under the binary
 * policy (`ultra-efficient`, `quantization: binary`, `binary_quantization`) the default becomes
 * packed bits only, while floats a client asked for are still answered.
 */
export const DEFAULT_EMBEDDING_TYPES: readonly EmbeddingType[] = Object.freeze(["float"]);

/** Whether `request` left its output encodings at {@link DEFAULT_EMBEDDING_TYPES}. */
export function usesDefaultEmbeddingTypes(request: Pick<EmbedRequest, "embeddingTypes">): boolean {
  return request.embeddingTypes === DEFAULT_EMBEDDING_TYPES;
}

/** The fields a transport sets on a request; every other field takes its default. */
export type EmbedRequestFields = Pick<EmbedRequest, "requestId" | "texts"> & Partial<EmbedRequest>;

/**
 * Makes a domain request with the defaults every transport shares: the
 * default model (`""` = the `efficient` preset), the model's native size
 * (`dimensions` 0) under the server's dimensions policy (`dimensionsPolicy`
 * left absent: the local engine applies `SUTRA_DIMENSIONS_POLICY`), no engine
 * options, truncation at the end, normalised float vectors ({@link DEFAULT_EMBEDDING_TYPES}), no cross-model
 * fallback. A field given as `undefined` keeps its default, so transports can
 * pass optional fields straight through.
 */
export function createEmbedRequest(fields: EmbedRequestFields): EmbedRequest {
  const request: EmbedRequest = {
    requestId: fields.requestId,
    texts: fields.texts,
    dimensions: 0,
    model: "",
    config: {},
    truncate: "end",
    normalize: true,
    embeddingTypes: DEFAULT_EMBEDDING_TYPES as EmbeddingType[],
    allowCrossModelFallback: false,
  };
  for (const [name, value] of Object.entries(fields)) {
    if (value !== undefined) (request as unknown as Record<string, unknown>)[name] = value;
  }
  return request;
}
