import { describe, expect, it } from "vitest";
import type { DimensionsPolicy } from "../../src/domain/types.js";
import type { ModelManifest } from "../../src/models/manifest.js";
import { finishEmbedding } from "../../src/postprocess/encode-embedding.js";
import { DIMENSIONS_POLICIES, resolveDimensions } from "../../src/postprocess/resolve-dimensions.js";

const manifest = { id: "org/m", dimensions: 8, matryoshkaDimensions: [4] } as unknown as ModelManifest;
const native = Float32Array.from([3, 4, 0, 0, 0, 0, 0, 0]);

const refusal = (requested: number, policy: DimensionsPolicy) => {
  try {
    resolveDimensions(requested, policy, manifest);
  } catch (error) {
    return error as { reason: string; message: string; details: Record<string, unknown> };
  }
  throw new Error(`${requested} under ${policy} was not refused`);
};

describe("dimensions policy", () => {
  it.each(DIMENSIONS_POLICIES)("%s: native and Matryoshka sizes are exact", (policy) => {
    expect(resolveDimensions(0, policy, manifest)).toEqual({ policy: "native", size: 8 });
    expect(resolveDimensions(8, policy, manifest)).toEqual({ policy: "native", size: 8 });
    expect(resolveDimensions(4, policy, manifest)).toEqual({ policy: "matryoshka", size: 4 });
  });

  it("plans other sizes as each policy says", () => {
    expect(resolveDimensions(6, "reduce", manifest)).toEqual({ policy: "reduce", size: 6 });
    expect(resolveDimensions(6, "pad", manifest)).toEqual({ policy: "reduce", size: 6 });
    expect(resolveDimensions(12, "pad", manifest)).toEqual({ policy: "pad", size: 12 });
    expect(resolveDimensions(6, "ignore", manifest)).toEqual({ policy: "ignore", size: 8 });
    expect(resolveDimensions(12, "ignore", manifest)).toEqual({ policy: "ignore", size: 8 });
  });

  it("reduce refuses sizes above the native one, naming it; reject refuses every other size, listing the supported ones", () => {
    const above = refusal(12, "reduce");
    expect(above.reason).toBe("INVALID_DIMENSIONS");
    expect(above.message).toContain("produces 8 dimensions");
    expect(above.details).toMatchObject({ dimensions: 12, native: 8, supported: [4, 8] });
    for (const requested of [6, 12]) {
      expect(refusal(requested, "reject")).toMatchObject({ reason: "INVALID_DIMENSIONS", details: { dimensions: requested, supported: [4, 8] } });
    }
  });

  it("finishes cut and padded vectors renormalised, and leaves the model's vector untouched", () => {
    const reduced = finishEmbedding(native, { policy: "reduce", size: 2 }, false, ["float"]).float;
    expect(Array.from(reduced ?? [])).toEqual([0.6, 0.8].map((value) => Math.fround(value)));
    const padded = finishEmbedding(native, { policy: "pad", size: 10 }, false, ["float"]).float;
    expect(Array.from(padded ?? [])).toEqual([0.6, 0.8, 0, 0, 0, 0, 0, 0, 0, 0].map((value) => Math.fround(value)));
    expect(Array.from(native)).toEqual([3, 4, 0, 0, 0, 0, 0, 0]);
    expect(finishEmbedding(native, { policy: "ignore", size: 8 }, false, ["float"]).float).toBe(native);
  });
});
