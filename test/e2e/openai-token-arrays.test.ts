import { Tiktoken } from "js-tiktoken/lite";
import cl100kBase from "js-tiktoken/ranks/cl100k_base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_MODEL_ID } from "../../src/models/builtin.js";
import { startRealService, type RunningService } from "../support/real-service.js";

const SENTENCES = [
  "The quick brown fox jumps over the lazy dog.",
  "LangChain sends OpenAI's token ids instead of text.",
  "Café au lait, s'il vous plaît — 日本語も",
];

interface EmbeddingsAnswer {
  data: Array<{ index: number; embedding: string }>;
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

interface ErrorAnswer {
  error: { code: string; param: string | null; type: string; message: string; details: Record<string, unknown> };
}

/**
 * LangChain's OpenAIEmbeddings (Python, `check_embedding_ctx_length` on by default) encodes each text with
 * tiktoken's cl100k_base and posts the ids through the openai SDK, which asks for base64.
 */
describe("token arrays as LangChain sends them: OpenAI's cl100k_base ids (real server, real model)", () => {
  let running: RunningService;
  let cl100k: Tiktoken;

  const post = async (body: unknown): Promise<{ status: number; body: unknown }> => {
    const response = await fetch(`${running.baseUrl}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };
  const embed = async (input: unknown): Promise<EmbeddingsAnswer> => {
    const answer = await post({ input, model: "text-embedding-ada-002", encoding_format: "base64" });
    expect(answer.status, JSON.stringify(answer.body).slice(0, 200)).toBe(200);
    return answer.body as EmbeddingsAnswer;
  };
  const idCount = (arrays: number[][]): number => arrays.reduce((sum, ids) => sum + ids.length, 0);

  beforeAll(async () => {
    running = await startRealService();
    cl100k = new Tiktoken(cl100kBase);
  });
  afterAll(() => running?.stop());

  it("a list of token arrays (embed_documents) answers the sentences' own vectors, bit for bit, and counts the model's tokens", async () => {
    const fromText = await embed(SENTENCES);
    const arrays = SENTENCES.map((sentence) => cl100k.encode(sentence));
    const fromIds = await embed(arrays);
    expect(fromIds.data.map((item) => item.index)).toEqual([0, 1, 2]);
    expect(fromIds.data.map((item) => item.embedding)).toEqual(fromText.data.map((item) => item.embedding));
    expect(Buffer.from(fromIds.data[0].embedding, "base64").byteLength).toBe(512 * 4);
    expect(fromIds.model).toBe(DEFAULT_MODEL_ID);
    // The text request counts the model's tokens (openai-dialect.test.ts checks that against the tokenizer).
    expect(fromIds.usage).toEqual(fromText.usage);
    expect(fromIds.usage.prompt_tokens).not.toBe(idCount(arrays));
  });

  it("one token array, flat or as a list of one (embed_query), answers that sentence's vector", async () => {
    const alone = await embed(SENTENCES[2]);
    const ids = cl100k.encode(SENTENCES[2]);
    expect(alone.usage.prompt_tokens).not.toBe(ids.length);
    for (const input of [ids, [ids]]) {
      const answer = await embed(input);
      expect(answer.data).toHaveLength(1);
      expect(answer.data[0].embedding).toBe(alone.data[0].embedding);
      expect(answer.usage).toEqual(alone.usage);
    }
  });

  it("decodes special tokens to their text and a chunk cut inside a character to U+FFFD", async () => {
    const [special] = (await embed([[cl100k.encode("<|endoftext|>", "all")[0]]])).data;
    const [specialText] = (await embed(["<|endoftext|>"])).data;
    expect(special.embedding).toBe(specialText.embedding);
    const ids = cl100k.encode("日本語");
    const cut = ids.findIndex((_, end) => cl100k.decode(ids.slice(0, end + 1)).endsWith("\uFFFD"));
    expect(cut).toBeGreaterThanOrEqual(0);
    const partial = cl100k.decode(ids.slice(0, cut + 1));
    const [chunk] = (await embed([ids.slice(0, cut + 1)])).data;
    const [chunkText] = (await embed([partial])).data;
    expect(chunk.embedding).toBe(chunkText.embedding);
  });

  it("answers 400 INVALID_ARGUMENT naming input, the array and the position for an id cl100k_base cannot decode", async () => {
    const good = cl100k.encode(SENTENCES[0]);
    const cases: Array<[unknown, number, number]> = [
      [[good, [...good.slice(0, 3), 100_277]], 1, 3],
      [[[100_256]], 0, 0],
      [[good, good, [1, 100_270]], 2, 1],
      [[...good, -1], 0, good.length],
      [[1, 2.5], 0, 1],
      [[[1, "2"]], 0, 1],
      [[[2 ** 40]], 0, 0],
    ];
    for (const [input, index, position] of cases) {
      const answer = await post({ input, model: "text-embedding-ada-002" });
      const label = JSON.stringify(input).slice(-60);
      expect(answer.status, label).toBe(400);
      const { error } = answer.body as ErrorAnswer;
      expect(error, label).toMatchObject({ code: "INVALID_ARGUMENT", param: "input", type: "invalid_request_error" });
      expect(error.details, label).toMatchObject({ field: "input", index, position });
      expect(error.message, label).toContain(`input[${index}][${position}]`);
      expect(error.message, label).toContain("cl100k_base");
    }
  });
});
