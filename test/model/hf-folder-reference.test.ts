import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TASK_PRESETS } from "../../src/models/task-presets.js";
import { writeTinyBertModel, writeTinyDecoderModel } from "../support/tiny-models.js";
import { startRealService, type RunningService } from "../support/real-service.js";

/**
 * Sentence-transformers folders copied into the models folder (no sutra-model.json) are served
 * as they are, and the service's vectors equal a reference computed here with
 * @huggingface/tokenizers, onnxruntime-node and pooling written in this file (each text run
 * alone, so no padding at all), within 1e-5: mean and cls pooling on the WordPiece encoder (right
 * padding), last-token on the decoder with position_ids, padded left and padded right.
 */

const TOLERANCE = 1e-5;
const TEXTS = [
  "Hello world!",
  "What is the capital of France? Paris is the capital of France, and the city is famous for its museums.",
  "a",
  "The quick brown fox jumps over the lazy dog; searching documents for query text and learning from data.",
  "Mixed Case, punctuation!! and numbers 42 and 2026.",
];
const LONG_TEXT = Array.from({ length: 160 }, (_, index) => ["search", "the", "data", "model", "vector", "rain"][index % 6] + (index % 7 === 0 ? "s" : "")).join(" ");

interface Reference {
  dir: string;
  tokenizer: Tokenizer;
  session: ort.InferenceSession;
  pooling: "mean" | "cls" | "last-token";
}

let running: RunningService;
const references = new Map<string, Reference>();

async function reference(id: string, dir: string, pooling: Reference["pooling"]): Promise<void> {
  const read = async (file: string) => JSON.parse(await readFile(join(dir, file), "utf8"));
  const tokenizer = new Tokenizer(await read("tokenizer.json"), await read("tokenizer_config.json"));
  const session = await ort.InferenceSession.create(join(dir, "onnx/model.onnx"));
  references.set(id, { dir, tokenizer, session, pooling });
}

/** The reference vector of one token sequence: the model run on it alone, pooled here, optionally L2-normalised. */
async function referenceVector(id: string, ids: number[], normalize = true): Promise<Float32Array> {
  const model = references.get(id);
  if (!model) throw new Error(`no reference for ${id}`);
  const length = ids.length;
  const int64 = (values: number[]) => new ort.Tensor("int64", BigInt64Array.from(values.map(BigInt)), [1, length]);
  const all: Record<string, ort.Tensor> = {
    input_ids: int64(ids),
    attention_mask: int64(ids.map(() => 1)),
    token_type_ids: int64(ids.map(() => 0)),
    position_ids: int64(ids.map((_, index) => index)),
  };
  const feeds = Object.fromEntries(model.session.inputNames.map((name) => [name, all[name]]));
  const output = (await model.session.run(feeds)).last_hidden_state;
  const hidden = output.data as Float32Array;
  const size = output.dims[2];
  const vector = new Float32Array(size);
  if (model.pooling === "mean") {
    for (let position = 0; position < length; position++) {
      for (let index = 0; index < size; index++) vector[index] += hidden[position * size + index] / length;
    }
  } else {
    const position = model.pooling === "cls" ? 0 : length - 1;
    vector.set(hidden.subarray(position * size, (position + 1) * size));
  }
  if (normalize) {
    const norm = Math.hypot(...vector);
    for (let index = 0; index < size; index++) vector[index] /= norm;
  }
  return vector;
}

const idsOf = (id: string, text: string): number[] => references.get(id)?.tokenizer.encode(text).ids ?? [];

async function embed(body: Record<string, unknown>): Promise<{ status: number; json: { embeddings: number[][]; metadata: { truncated_inputs: number[] }; error?: { code: string; details: Record<string, unknown> } } }> {
  const response = await fetch(`${running.baseUrl}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ config: { quantization: "none" }, ...body }),
  });
  return { status: response.status, json: await response.json() };
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let index = 0; index < a.length; index++) worst = Math.max(worst, Math.abs(a[index] - b[index]));
  return worst;
}

let modelsDir: string;

beforeAll(async () => {
  modelsDir = await mkdtemp(join(tmpdir(), "sutra-hf-folders-"));
  await writeTinyBertModel(join(modelsDir, "tiny--bert-mean"), { pooling: "mean", seed: 3 });
  await writeTinyBertModel(join(modelsDir, "tiny--bert-cls"), { pooling: "cls", seed: 4 });
  await writeTinyDecoderModel(join(modelsDir, "tiny--decoder-left"), { seed: 5 });
  await writeTinyDecoderModel(join(modelsDir, "tiny--decoder-right"), { seed: 5 });
  const configFile = join(modelsDir, "tiny--decoder-right", "tokenizer_config.json");
  const config = JSON.parse(await readFile(configFile, "utf8"));
  await writeFile(configFile, JSON.stringify({ ...config, padding_side: "right" }));
  await reference("tiny/bert-mean", join(modelsDir, "tiny--bert-mean"), "mean");
  await reference("tiny/bert-cls", join(modelsDir, "tiny--bert-cls"), "cls");
  await reference("tiny/decoder-left", join(modelsDir, "tiny--decoder-left"), "last-token");
  await reference("tiny/decoder-right", join(modelsDir, "tiny--decoder-right"), "last-token");
  running = await startRealService({ modelsDir, cacheSize: 0 });
});

afterAll(async () => {
  await running?.stop();
  for (const model of references.values()) await model.session.release();
  if (modelsDir) await rm(modelsDir, { recursive: true, force: true });
});

describe("sentence-transformers folders against a reference computed in the test", () => {
  it("the tiny encoder's tokenizer.json is a real WordPiece one with [CLS]/[SEP]", () => {
    const tokenizer = references.get("tiny/bert-mean")?.tokenizer;
    expect(tokenizer?.tokenize("Hello worlds", { add_special_tokens: true })).toEqual(["[CLS]", "hello", "world", "##s", "[SEP]"]);
  });

  it("ListModels describes the folders from their own config files", async () => {
    const models = ((await (await fetch(`${running.baseUrl}/v1/models`)).json()) as { models: Array<Record<string, unknown>> }).models;
    const byId = new Map(models.map((model) => [model.id, model]));
    expect(byId.get("tiny/bert-mean")).toMatchObject({ pooling: "mean", dimensions: 32, max_tokens: 128, status: "ready" });
    expect(byId.get("tiny/bert-cls")).toMatchObject({ pooling: "cls" });
    expect(byId.get("tiny/decoder-left")).toMatchObject({ pooling: "last-token" });
    expect(byId.get("sentence-transformers/all-MiniLM-L6-v2")).toMatchObject({ status: "available", dimensions: 384, license: "apache-2.0" });

    const ids = async (query: string) =>
      ((await (await fetch(`${running.baseUrl}/v1/models?${query}`)).json()) as { models: Array<{ id: string }> }).models.map((model) => model.id);
    const with384 = await ids("dimensions=384");
    expect(with384).toContain("BAAI/bge-small-en-v1.5");
    expect(with384).not.toContain("tiny/bert-mean");
    expect(with384).not.toContain("BAAI/bge-base-en-v1.5");
    expect(await ids("dimensions=256")).toContain("nomic-ai/nomic-embed-text-v1.5");
    const minimal = await ids("hardware_profile=minimal");
    expect(minimal).toContain("tiny/bert-mean");
    expect(minimal).toContain("sentence-transformers/all-MiniLM-L6-v2");
    expect(minimal).not.toContain("BAAI/bge-base-en-v1.5");
    expect(await ids("hardware_profile=server")).toContain("BAAI/bge-base-en-v1.5");
  });

  for (const [id, padding] of [
    ["tiny/bert-mean", "right"],
    ["tiny/bert-cls", "right"],
    ["tiny/decoder-left", "left"],
    ["tiny/decoder-right", "right"],
  ] as const) {
    it(`${id} (${padding} padding): service vectors of a mixed-length batch equal the reference within ${TOLERANCE}`, async () => {
      const normalized = await embed({ texts: TEXTS, model: id });
      expect(normalized.status).toBe(200);
      const raw = await embed({ texts: TEXTS, model: id, normalize: false });
      for (const [index, text] of TEXTS.entries()) {
        const ids = idsOf(id, text);
        expect(maxAbsDifference(normalized.json.embeddings[index], await referenceVector(id, ids))).toBeLessThanOrEqual(TOLERANCE);
        expect(maxAbsDifference(raw.json.embeddings[index], await referenceVector(id, ids, false))).toBeLessThanOrEqual(TOLERANCE);
      }
    });
  }

  it("truncation END and START keep the first and the last tokens (specials kept), verified on token ids", async () => {
    const id = "tiny/bert-mean";
    const tokenizer = references.get(id)?.tokenizer as Tokenizer;
    const content = tokenizer.encode(LONG_TEXT, { add_special_tokens: false }).ids;
    expect(content.length).toBeGreaterThan(126);
    const cls = tokenizer.token_to_id("[CLS]") as number;
    const sep = tokenizer.token_to_id("[SEP]") as number;
    const endIds = [cls, ...content.slice(0, 126), sep];
    const startIds = [cls, ...content.slice(content.length - 126), sep];
    const end = await embed({ texts: ["short", LONG_TEXT], model: id, truncate: "END" });
    const start = await embed({ texts: ["short", LONG_TEXT], model: id, truncate: "START" });
    expect(end.json.metadata.truncated_inputs).toEqual([1]);
    expect(maxAbsDifference(end.json.embeddings[1], await referenceVector(id, endIds))).toBeLessThanOrEqual(TOLERANCE);
    expect(maxAbsDifference(start.json.embeddings[1], await referenceVector(id, startIds))).toBeLessThanOrEqual(TOLERANCE);
    expect(maxAbsDifference(end.json.embeddings[1], start.json.embeddings[1])).toBeGreaterThan(1e-3);
    const none = await embed({ texts: ["short", LONG_TEXT], model: id, truncate: "NONE" });
    expect(none.status).toBe(400);
    expect(none.json.error?.code).toBe("INPUT_TOO_LONG");
    // The tokenizer stops reading once the text is certain to be too long: `tokens` is what it counted by then.
    expect(none.json.error?.details).toMatchObject({ index: 1, limit: 128 });
    expect(none.json.error?.details.tokens).toBeGreaterThan(128);
    expect(none.json.error?.details.tokens).toBeLessThanOrEqual(content.length + 2);
  });

  it("instruction is applied as `Instruct: {instruction}\\nQuery:{text}` byte for byte (case-sensitive BPE model)", async () => {
    const id = "tiny/decoder-left";
    const instruction = "Given a Query, retrieve passages";
    const text = "The Quick fox";
    const withInstruction = await embed({ texts: [text], model: id, instruction });
    const expected = await referenceVector(id, idsOf(id, `Instruct: ${instruction}\nQuery:${text}`));
    expect(maxAbsDifference(withInstruction.json.embeddings[0], expected)).toBeLessThanOrEqual(TOLERANCE);
    const spaced = await referenceVector(id, idsOf(id, `Instruct: ${instruction}\nQuery: ${text}`));
    expect(maxAbsDifference(withInstruction.json.embeddings[0], spaced)).toBeGreaterThan(1e-4);

    const preset = await embed({ texts: [text], model: id, prompt_name: "reviews" });
    const presetExpected = await referenceVector(id, idsOf(id, `Instruct: ${DEFAULT_TASK_PRESETS.reviews}\nQuery:${text}`));
    expect(maxAbsDifference(preset.json.embeddings[0], presetExpected)).toBeLessThanOrEqual(TOLERANCE);

    const prompt = await embed({ texts: [text], model: id, prompt_name: "query" });
    const promptExpected = await referenceVector(id, idsOf(id, `Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:${text}`));
    expect(maxAbsDifference(prompt.json.embeddings[0], promptExpected)).toBeLessThanOrEqual(TOLERANCE);

    const unknown = await embed({ texts: [text], model: id, prompt_name: "nope" });
    expect(unknown.status).toBe(400);
  });
});
