/** Largest finite IEEE 754 binary16 value. */
export const FLOAT16_MAX = 65504;

const scratchFloat = new Float32Array(1);
const scratchBits = new Uint32Array(scratchFloat.buffer);

/**
 * Converts a number to IEEE 754 binary16 bits exactly as a hardware conversion does: the value is
 * first rounded to float32, then to float16 with round-to-nearest-even, producing subnormals below
 * 2^-14, signed zeros below half the smallest subnormal, ±Infinity on overflow (|x| >= 65520) and a
 * quiet NaN that keeps the top payload bits.
 */
export function float32ToFloat16Bits(value: number): number {
  scratchFloat[0] = value;
  const bits = scratchBits[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200 | (mantissa >>> 13));
  const halfExponent = exponent - 112;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    const significand = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    const truncated = significand >>> shift;
    const remainder = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    const roundUp = remainder > halfway || (remainder === halfway && (truncated & 1) === 1);
    return sign | (truncated + (roundUp ? 1 : 0));
  }
  const truncated = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  const roundUp = remainder > 0x1000 || (remainder === 0x1000 && (truncated & 1) === 1);
  // A carry out of the mantissa correctly bumps the exponent, up to Infinity.
  return sign | (truncated + (roundUp ? 1 : 0));
}

/** Decodes IEEE 754 binary16 bits to a number (exact: every float16 value is a float32 value). */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : Number.NaN;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

/**
 * Converts float32 values to float16 bits. With `saturate` (the default, what weight storage wants)
 * finite values beyond ±65504 become ±65504 instead of ±Infinity, so a large but finite weight never
 * turns into Infinity; NaN and ±Infinity stay what they are.
 */
export function toFloat16Array(values: ArrayLike<number>, options: { saturate?: boolean } = {}): Uint16Array {
  const saturate = options.saturate ?? true;
  const result = new Uint16Array(values.length);
  for (let index = 0; index < values.length; index++) {
    let value = values[index];
    if (saturate && Number.isFinite(value)) value = Math.min(FLOAT16_MAX, Math.max(-FLOAT16_MAX, value));
    result[index] = float32ToFloat16Bits(value);
  }
  return result;
}
