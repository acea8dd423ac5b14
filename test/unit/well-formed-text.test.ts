import { create, fromBinary, type JsonValue } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { checkWellFormedText, validateEmbedRequest } from "../../src/front-door/validate-request.js";
import { checkWellFormedJson, checkWellFormedMessage, decodeProtobufStringsMarked, decodeUtf8Marked } from "../../src/api/well-formed-text.js";
import { EmbedderError } from "../../src/domain/errors.js";
import type { EmbedRequest } from "../../src/domain/types.js";
import { CreateJobRequestSchema, GenerateEmbeddingsRequestSchema } from "../../gen/sutra/embedder/v1/embedder_pb.js";

/** The error `run` throws, or undefined. */
function refusal(run: () => void): EmbedderError | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    if (error instanceof EmbedderError) return error;
    throw error;
  }
}

const bytes = (...parts: Array<string | number[]>): Uint8Array =>
  Buffer.concat(parts.map((part) => (typeof part === "string" ? Buffer.from(part, "utf8") : Buffer.from(part))));

describe("decodeUtf8Marked", () => {
  it("decodes UTF-8 as TextDecoder does, a leading BOM dropped", () => {
    for (const text of ["", "hello", "héllo wörld", "日本語", "😀 emoji", "a\ufffdb", "\ufeffafter a BOM"]) {
      expect(decodeUtf8Marked(bytes(text))).toBe(new TextDecoder().decode(bytes(text)));
    }
  });

  it("turns each run of bytes that is not UTF-8 into a lone surrogate, keeping a U+FFFD the client sent", () => {
    const decoded = decodeUtf8Marked(bytes("a", [0xff, 0xfe], "b", [0xef, 0xbf, 0xbd], "c", [0xed, 0xa0, 0x80], "d"));
    expect(decoded.isWellFormed()).toBe(false);
    expect(decoded.startsWith("a")).toBe(true);
    expect(decoded).toContain("b\ufffdc");
    expect(decoded.endsWith("d")).toBe(true);
    expect(decoded.replace(/[\udc00-\udfff]/g, "")).toBe("ab\ufffdcd");
    // A BOM is dropped only at the very start, as the whole-text decoder drops it.
    expect(decodeUtf8Marked(bytes([0xef, 0xbb, 0xbf], "x", [0xff], [0xef, 0xbb, 0xbf]))).toBe("x\udcff\ufeff");
  });

  it("marks bytes that are not UTF-8 in a protobuf string once protobuf-es decodes with it", () => {
    decodeProtobufStringsMarked();
    const message = fromBinary(GenerateEmbeddingsRequestSchema, bytes([0x0a, 0x04], "a", [0xff, 0xfe], "b", [0x0a, 0x03], [0xef, 0xbf, 0xbd]));
    expect(message.texts[0].isWellFormed()).toBe(false);
    expect(message.texts[1]).toBe("\ufffd");
  });
});

describe("the well-formed text checks", () => {
  it("checkWellFormedText refuses a lone surrogate with INVALID_ARGUMENT naming the field and index", () => {
    expect(refusal(() => checkWellFormedText("fine 😀", "texts", 0))).toBeUndefined();
    const error = refusal(() => checkWellFormedText("a\ud800b", "texts", 3));
    expect(error?.reason).toBe("INVALID_ARGUMENT");
    expect(error?.details).toEqual({ field: "texts", index: 3 });
    expect(error?.message).toMatch(/^texts\[3\] is not well-formed text/);
  });

  it("validateEmbedRequest refuses an ill-formed text of any request", () => {
    const request: EmbedRequest = {
      requestId: "r", texts: ["ok", "\udc00"], dimensions: 0, model: "", config: {}, truncate: "end", normalize: true, embeddingTypes: ["float"], allowCrossModelFallback: false,
    };
    expect(refusal(() => validateEmbedRequest(request, { maxInputs: 10 }))?.details).toEqual({ field: "texts", index: 1 });
  });

  it("checkWellFormedJson names the path of keys and the index in the innermost list, and survives deep nesting", () => {
    const at = (json: JsonValue) => refusal(() => checkWellFormedJson(json))?.details;
    expect(at({ texts: ["a", "b"], model: "m", nested: { list: [[1, "x"]] } })).toBeUndefined();
    expect(at({ texts: ["a", "\ud800"] })).toEqual({ field: "texts", index: 1 });
    expect(at({ documents: [{ text: "ok" }, { text: "ok" }, { id: "c", text: "\udfff" }] })).toEqual({ field: "documents.text", index: 2 });
    expect(at({ "ke\ud800y": 1 })).toEqual({ field: "a field name" });
    expect(at("\ud800")).toEqual({ field: "the request body" });
    let deep: JsonValue = "\ud800";
    for (let depth = 0; depth < 50_000; depth++) deep = [deep];
    expect(at({ input: deep })).toEqual({ field: "input", index: 0 });
  });

  it("checkWellFormedMessage walks lists, nested messages and Struct values by proto field name", () => {
    const at = (message: Parameters<typeof checkWellFormedMessage>[1], schema: Parameters<typeof checkWellFormedMessage>[0], index?: number) =>
      refusal(() => checkWellFormedMessage(schema, message, index))?.details;
    expect(at(create(GenerateEmbeddingsRequestSchema, { texts: ["a", "b\udc00"] }), GenerateEmbeddingsRequestSchema)).toEqual({ field: "texts", index: 1 });
    expect(at(create(GenerateEmbeddingsRequestSchema, { texts: ["a"], model: "\ud800" }), GenerateEmbeddingsRequestSchema, 4)).toEqual({ field: "model", index: 4 });
    const job = create(CreateJobRequestSchema, { documents: [{ text: "fine" }, { text: "ok", metadata: { tag: "\ud800" } }] });
    expect(at(job, CreateJobRequestSchema)).toMatchObject({ index: 1 });
    expect(at(create(CreateJobRequestSchema, { documents: [{ text: "fine", metadata: { tag: "ok", list: ["a", 1] } }] }), CreateJobRequestSchema)).toBeUndefined();
  });
});
