import { describe, expect, it } from "vitest";
import { validateEmbedRequest } from "../../src/front-door/validate-request.js";
import { EmbedderError } from "../../src/domain/errors.js";
import type { ErrorDetails, ErrorReason } from "../../src/domain/errors.js";
import type { EmbedRequest } from "../../src/domain/types.js";

const limits = { maxInputs: 2048 };

function request(overrides: Partial<EmbedRequest> = {}): EmbedRequest {
  return {
    requestId: "test",
    texts: ["hello"],
    dimensions: 0,
    model: "",
    config: {},
    truncate: "end",
    normalize: true,
    embeddingTypes: ["float"],
    allowCrossModelFallback: false,
    ...overrides,
  };
}

function rejection(candidate: EmbedRequest): { reason: ErrorReason; details: ErrorDetails } | undefined {
  try {
    validateEmbedRequest(candidate, limits);
    return undefined;
  } catch (error) {
    if (!(error instanceof EmbedderError)) throw error;
    return { reason: error.reason, details: error.details };
  }
}

describe("validateEmbedRequest", () => {
  it("accepts 1 and exactly maxInputs texts", () => {
    expect(rejection(request())).toBeUndefined();
    expect(rejection(request({ texts: Array.from({ length: 2048 }, (_, index) => `t${index}`) }))).toBeUndefined();
  });

  it("rejects no texts as EMPTY_INPUT", () => {
    expect(rejection(request({ texts: [] }))?.reason).toBe("EMPTY_INPUT");
  });

  it("rejects more than maxInputs texts as TOO_MANY_INPUTS with the count and limit", () => {
    expect(rejection(request({ texts: Array.from({ length: 2049 }, () => "x") }))).toEqual({
      reason: "TOO_MANY_INPUTS",
      details: { count: 2049, limit: 2048 },
    });
  });

  it("names the index of an empty text", () => {
    expect(rejection(request({ texts: ["a", "b", "", "d"] }))).toEqual({ reason: "EMPTY_INPUT", details: { index: 2 } });
  });

  it.each([0, 64, 384, 4096])("accepts dimensions %i", (dimensions) => {
    expect(rejection(request({ dimensions }))).toBeUndefined();
  });

  it.each([1, 63, 4097, 8000, 100.5, -64])("rejects dimensions %d as INVALID_DIMENSIONS", (dimensions) => {
    expect(rejection(request({ dimensions }))).toEqual({
      reason: "INVALID_DIMENSIONS",
      details: { dimensions, min: 64, max: 4096 },
    });
  });

  it.each([1, 32, 256])("accepts batch_size %i", (batchSize) => {
    expect(rejection(request({ config: { batchSize } }))).toBeUndefined();
  });

  it.each([0, 257, 1.5])("rejects batch_size %d as INVALID_ARGUMENT naming the field", (batchSize) => {
    const found = rejection(request({ config: { batchSize } }));
    expect(found?.reason).toBe("INVALID_ARGUMENT");
    expect(found?.details.field).toBe("config.batch_size");
  });

  it("checks the count before looking for empty texts", () => {
    expect(rejection(request({ texts: Array.from({ length: 3000 }, () => "") }))?.reason).toBe("TOO_MANY_INPUTS");
  });
});
