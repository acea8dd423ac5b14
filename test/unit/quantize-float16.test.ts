import { describe, expect, it } from "vitest";
import { FLOAT16_MAX, float16BitsToFloat32, float32ToFloat16Bits, toFloat16Array } from "../../src/onnx/quantize/float16.js";

const isNaNBits = (bits: number) => (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
const nextFloat32 = (value: number, direction: 1 | -1) => {
  const view = new Float32Array([value]);
  const bits = new Uint32Array(view.buffer);
  bits[0] += value > 0 ? direction : -direction;
  return view[0];
};

describe("float32ToFloat16Bits", () => {
  it("round-trips every float16 bit pattern exactly", () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = float16BitsToFloat32(bits);
      if (Number.isNaN(value)) expect(isNaNBits(float32ToFloat16Bits(value))).toBe(true);
      else expect(float32ToFloat16Bits(value)).toBe(bits);
    }
  });

  it("rounds midpoints to even and everything else to nearest, subnormals included", () => {
    // Every pair of adjacent finite positive float16 values, normal and subnormal.
    for (let bits = 0; bits < 0x7bff; bits++) {
      const low = float16BitsToFloat32(bits);
      const high = float16BitsToFloat32(bits + 1);
      const midpoint = (low + high) / 2;
      const even = bits % 2 === 0 ? bits : bits + 1;
      expect(float32ToFloat16Bits(midpoint)).toBe(even);
      expect(float32ToFloat16Bits(-midpoint)).toBe(even | 0x8000);
      expect(float32ToFloat16Bits(nextFloat32(midpoint, -1))).toBe(bits);
      expect(float32ToFloat16Bits(nextFloat32(midpoint, 1))).toBe(bits + 1);
    }
  });

  it("handles the edges: zero signs, underflow, overflow, infinities, NaN", () => {
    expect(float32ToFloat16Bits(0)).toBe(0x0000);
    expect(float32ToFloat16Bits(-0)).toBe(0x8000);
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000); // half the smallest subnormal: tie to even (0)
    expect(float32ToFloat16Bits(nextFloat32(2 ** -25, 1))).toBe(0x0001);
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001);
    expect(float32ToFloat16Bits(2 ** -14)).toBe(0x0400); // smallest normal
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(1 / 3)).toBe(0x3555);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65519.99)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // rounds past the largest finite value
    expect(float32ToFloat16Bits(1e10)).toBe(0x7c00);
    expect(float32ToFloat16Bits(-Infinity)).toBe(0xfc00);
    expect(isNaNBits(float32ToFloat16Bits(Number.NaN))).toBe(true);
  });
});

describe("toFloat16Array", () => {
  it("saturates large finite values by default and keeps infinities", () => {
    const bits = toFloat16Array([1e6, -1e6, Infinity, 0.5]);
    expect(Array.from(bits, float16BitsToFloat32)).toEqual([FLOAT16_MAX, -FLOAT16_MAX, Infinity, 0.5]);
  });

  it("overflows to infinity when asked not to saturate", () => {
    expect(Array.from(toFloat16Array([1e6], { saturate: false }), float16BitsToFloat32)).toEqual([Infinity]);
  });
});
