import type { EmbeddingType, EncodedEmbedding } from "../domain/types.js";
import type { DimensionsPlan } from "./resolve-dimensions.js";

/** Scales a vector to unit L2 length in place; a zero vector stays zero. */
export function normalizeInPlace(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const value of vector) sum += value * value;
  if (sum === 0) return vector;
  const scale = 1 / Math.sqrt(sum);
  for (let index = 0; index < vector.length; index++) vector[index] *= scale;
  return vector;
}

/**
 * Packs sign bits 8 per byte, most significant bit first (value > 0 -> 1), as
 * sentence-transformers' `ubinary`; `binary` is the same bytes shifted by -128
 * into int8. A vector whose size is not a multiple of 8 is padded with 0 bits.
 */
export function packSignBits(vector: Float32Array): Uint8Array {
  const packed = new Uint8Array(Math.ceil(vector.length / 8));
  for (let index = 0; index < vector.length; index++) {
    if (vector[index] > 0) packed[index >> 3] |= 0x80 >> (index & 7);
  }
  return packed;
}

/**
 * Encodes one float vector into the requested output types. int8 and uint8 use
 * a fixed scale over [-1, 1] (the range of a normalised vector's components):
 * int8 = round(v * 127), uint8 = round((v + 1) * 127.5), clamped.
 */
export function encodeEmbedding(vector: Float32Array, types: readonly EmbeddingType[]): EncodedEmbedding {
  const encoded: EncodedEmbedding = {};
  for (const type of types) {
    switch (type) {
      case "float":
        encoded.float = vector;
        break;
      case "int8":
        encoded.int8 = Int8Array.from(vector, (value) => Math.max(-127, Math.min(127, Math.round(value * 127))));
        break;
      case "uint8":
        encoded.uint8 = Uint8Array.from(vector, (value) => Math.max(0, Math.min(255, Math.round((value + 1) * 127.5))));
        break;
      case "ubinary":
        encoded.ubinary = packSignBits(vector);
        break;
      case "binary":
        encoded.binary = Int8Array.from(packSignBits(vector), (byte) => byte - 128);
        break;
    }
  }
  return encoded;
}

/**
 * A vector cut or zero-padded to `size` (a copy), or the vector itself when it
 * already has that size.
 */
function fitToSize(vector: Float32Array, size: number): Float32Array {
  if (size === vector.length) return vector;
  if (size < vector.length) return vector.slice(0, size);
  const padded = new Float32Array(size);
  padded.set(vector);
  return padded;
}

/**
 * The last stage of every local embedding: the model's vector is brought to
 * the plan's size (fitToSize: a Matryoshka or `reduce` size cut, a `pad` size
 * zero-padded) and then always renormalised, so every answered vector has
 * unit length; a vector left at its native size is normalised in place when
 * `normalize` asks. Then it is encoded into `types`.
 */
export function finishEmbedding(vector: Float32Array, plan: DimensionsPlan, normalize: boolean, types: readonly EmbeddingType[]): EncodedEmbedding {
  const sized = fitToSize(vector, plan.size);
  if (normalize || sized !== vector) normalizeInPlace(sized);
  return encodeEmbedding(sized, types);
}
