import { describe, expect, it, vi } from "vitest";
import { EmbedderError } from "../../src/domain/errors.js";

const imported = vi.hoisted(() => ({ ranks: 0 }));

vi.mock("js-tiktoken/ranks/cl100k_base", async (importOriginal) => {
  imported.ranks++;
  return importOriginal();
});

const { decodeCl100kTokens } = await import("../../src/api/openai/decode-cl100k-tokens.js");
const { parseOpenAiRequest } = await import("../../src/api/openai/parse-openai-request.js");

function refusal(run: () => Promise<unknown>): Promise<EmbedderError> {
  return run().then(
    () => expect.fail("expected a refusal"),
    (error: unknown) => {
      expect(error).toBeInstanceOf(EmbedderError);
      return error as EmbedderError;
    },
  );
}

describe("decodeCl100kTokens (the OpenAI dialect's token arrays)", () => {
  it("loads the cl100k_base ranks only for the first token-array request, never for text", async () => {
    const text = await parseOpenAiRequest({ input: ["hello", "world"] }, "r1");
    expect(text.request.texts).toEqual(["hello", "world"]);
    expect(imported.ranks).toBe(0);
    const ids = await parseOpenAiRequest({ input: [[15339, 1917], [15339]] }, "r2");
    expect(ids.request.texts).toEqual(["hello world", "hello"]);
    await parseOpenAiRequest({ input: [9906] }, "r3");
    expect(imported.ranks).toBe(1);
  });

  it("checks the other fields before decoding, so a bad body costs no decoding", async () => {
    const error = await refusal(() => parseOpenAiRequest({ input: [[100_256]], model: 7 }, "r1"));
    expect(error.details).toEqual({ field: "model" });
  });

  it("decodes every rank and special token, and refuses cl100k_base's unused ids and anything past its last", async () => {
    const [first, last, specials] = await decodeCl100kTokens([[0], [100_255], [100_257, 100_276]]);
    expect(first).toBe("!");
    expect(last.length).toBeGreaterThan(0);
    expect(specials).toBe("<|endoftext|><|endofprompt|>");
    for (const id of [100_256, 100_261, 100_275, 100_277, -1, 0.5, Number.MAX_SAFE_INTEGER]) {
      const error = await refusal(() => decodeCl100kTokens([[0], [1, 2, id]]));
      expect(error.reason).toBe("INVALID_ARGUMENT");
      expect(error.details).toEqual({ field: "input", index: 1, position: 2 });
      expect(error.message).toBe(`input[1][2] = ${id} is not a cl100k_base token id`);
    }
  });

  it("decodes a chunk cut inside a character to U+FFFD, as tiktoken does", async () => {
    const [whole, cut] = await decodeCl100kTokens([[9080, 22656, 45918, 252], [9080, 22656, 45918]]);
    expect(whole).toBe("日本語");
    expect(cut).toBe("日本\uFFFD");
  });
});
