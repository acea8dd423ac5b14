import type { EmbedRequest } from "./types.js";

/** The fields a transport sets on a request; every other field takes its default. */
export type EmbedRequestFields = Pick<EmbedRequest, "requestId" | "texts"> & Partial<EmbedRequest>;

/**
 * Makes a domain request with the defaults every transport shares: the
 * default model (`""` = the `efficient` preset), the model's native size
 * (`dimensions` 0) under the server's dimensions policy (`dimensionsPolicy`
 * left absent: the local engine applies `SUTRA_DIMENSIONS_POLICY`), no engine
 * options, truncation at the end, normalised float vectors, no cross-model
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
    embeddingTypes: ["float"],
    allowCrossModelFallback: false,
  };
  for (const [name, value] of Object.entries(fields)) {
    if (value !== undefined) (request as unknown as Record<string, unknown>)[name] = value;
  }
  return request;
}
