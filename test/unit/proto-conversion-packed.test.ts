import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { GenerateEmbeddingsResponseSchema } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { answersInBinary, toEmbeddingMessage } from "../../src/api/proto-conversion.js";

/** A vector whose floats need every bit: subnormals, negative zero, the largest float32, ordinary values. */
function awkwardVector(): Float32Array {
  const vector = new Float32Array(512);
  for (let index = 0; index < vector.length; index++) vector[index] = Math.sin(index * 12.9898) * 43758.5453 % 1;
  vector.set([1.4e-45, -0, 3.4028234663852886e38, -1.1754942106924411e-38], 0);
  return vector;
}

describe("float vectors in binary protobuf answers", () => {
  it("are the same bytes on the wire whether written as packed bytes or as `values` one by one", () => {
    const float = awkwardVector();
    const int8 = new Int8Array([1, -2, 3]);
    const packed = create(GenerateEmbeddingsResponseSchema, { embeddings: [toEmbeddingMessage({ float, int8 }, true)] });
    const valueByValue = create(GenerateEmbeddingsResponseSchema, { embeddings: [toEmbeddingMessage({ float, int8 }, false)] });
    expect(packed.embeddings[0].values).toEqual([]);
    expect(valueByValue.embeddings[0].values).toHaveLength(512);
    const decoded = fromBinary(GenerateEmbeddingsResponseSchema, toBinary(GenerateEmbeddingsResponseSchema, packed));
    expect(Float32Array.from(decoded.embeddings[0].values)).toEqual(float);
    expect(Object.is(decoded.embeddings[0].values[1], -0)).toBe(true);
    expect(decoded.embeddings[0].int8).toEqual(new Uint8Array([1, 254, 3]));
    expect(toBinary(GenerateEmbeddingsResponseSchema, decoded)).toEqual(toBinary(GenerateEmbeddingsResponseSchema, valueByValue));
  });

  it("writes a vector that views part of a larger buffer from its own offset", () => {
    const backing = awkwardVector();
    const float = backing.subarray(128, 256);
    const message = create(GenerateEmbeddingsResponseSchema, { embeddings: [toEmbeddingMessage({ float }, true)] });
    const decoded = fromBinary(GenerateEmbeddingsResponseSchema, toBinary(GenerateEmbeddingsResponseSchema, message));
    expect(Float32Array.from(decoded.embeddings[0].values)).toEqual(float);
  });

  it("answersInBinary: proto codecs of gRPC, gRPC-Web and Connect; never JSON or REST", () => {
    for (const type of ["application/grpc", "application/grpc+proto", "application/grpc-web", "application/grpc-web+proto", "application/proto", "application/connect+proto", "Application/GRPC; charset=utf-8"]) {
      expect(answersInBinary(type), type).toBe(true);
    }
    for (const type of [null, "application/json", "application/grpc+json", "application/grpc-web+json", "application/connect+json", "application/grpc-web-text", "text/plain"]) {
      expect(answersInBinary(type), String(type)).toBe(false);
    }
  });
});
