import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID } from "../../src/models/builtin.js";
import type { ModelManifest, Precision } from "../../src/models/manifest.js";
import { cosineSimilarity } from "../../src/onnx/quantize/quality-gate.js";
import { loadTokenizer, type Tokenizer } from "../../src/tokenize/index.js";

const modelDir = join(BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID);
const manifest = JSON.parse(readFileSync(join(modelDir, "sutra-model.json"), "utf8")) as ModelManifest;
const sentences = (JSON.parse(readFileSync(new URL("../fixtures/use-lite-sentences.json", import.meta.url), "utf8")) as string[])
  .filter((text) => text.length > 0);
const DIMS = manifest.dimensions;

/** Gate thresholds of issue 2, judged on the test fixture (which the build's calibration set does not contain). */
const BARS: Record<Exclude<Precision, "fp32">, { min: number; mean?: number }> = {
  fp16: { min: 0.9999 },
  int8: { min: 0.995, mean: 0.998 },
  int4: { min: 0.98 },
};

let tokenizer: Tokenizer;

async function embed(session: ort.InferenceSession, texts: string[]): Promise<Float32Array[]> {
  const padded = tokenizer.pad(tokenizer.encodeBatch(texts));
  const dims = [padded.batchSize, padded.sequenceLength];
  const output = await session.run({
    input_ids: new ort.Tensor("int64", padded.inputIds, dims),
    attention_mask: new ort.Tensor("int64", padded.attentionMask, dims),
  });
  const data = output[manifest.output].data as Float32Array;
  return texts.map((_, row) => data.slice(row * DIMS, (row + 1) * DIMS));
}

async function embedAll(session: ort.InferenceSession): Promise<Float32Array[]> {
  const vectors: Float32Array[] = [];
  for (let start = 0; start < sentences.length; start += 32) vectors.push(...(await embed(session, sentences.slice(start, start + 32))));
  return vectors;
}

describe("precision variants of the default model", () => {
  let reference: Float32Array[];
  beforeAll(async () => {
    tokenizer = await loadTokenizer(join(modelDir, manifest.tokenizer), { maxTokens: manifest.maxTokens });
    const session = await ort.InferenceSession.create(join(modelDir, manifest.variants.fp32!.file), { intraOpNumThreads: 1 });
    reference = await embedAll(session);
    await session.release();
  });

  it("the build wrote fp16, int8 and int4, each with a passing gate in the manifest", () => {
    for (const precision of ["fp16", "int8", "int4"] as const) {
      expect(manifest.variants[precision]?.gate?.passed, precision).toBe(true);
      expect(manifest.files[manifest.variants[precision]!.file], precision).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  for (const precision of ["fp16", "int8", "int4"] as const) {
    it(`${precision} stays within its bar against fp32 on ${sentences.length} fixture sentences`, async () => {
      const session = await ort.InferenceSession.create(join(modelDir, manifest.variants[precision]!.file), { intraOpNumThreads: 1 });
      const vectors = await embedAll(session);
      await session.release();
      const cosines = vectors.map((vector, index) => cosineSimilarity(vector, reference[index]));
      const min = Math.min(...cosines);
      const mean = cosines.reduce((sum, value) => sum + value, 0) / cosines.length;
      console.log(`${precision} vs fp32 on ${sentences.length} sentences: min cosine ${min.toFixed(6)}, mean ${mean.toFixed(6)}`);
      expect(min).toBeGreaterThanOrEqual(BARS[precision].min);
      if (BARS[precision].mean !== undefined) expect(mean).toBeGreaterThanOrEqual(BARS[precision].mean!);
    });
  }

  for (const precision of ["fp32", "fp16", "int8", "int4"] as const) {
    for (const threads of [1, 2]) {
      it(`${precision} is batch invariant with ${threads} intra-op thread(s): alone vs in a batch of 32 mixed lengths, max abs diff <= 1e-6`, async () => {
        const session = await ort.InferenceSession.create(join(modelDir, manifest.variants[precision]!.file), {
          intraOpNumThreads: threads,
          graphOptimizationLevel: "all",
        });
        const batch = Array.from({ length: 32 }, (_, index) => sentences[Math.floor((index * (sentences.length - 1)) / 31)]);
        const inBatch = await embed(session, batch);
        let worst = 0;
        for (let row = 0; row < batch.length; row++) {
          const [alone] = await embed(session, [batch[row]]);
          for (let index = 0; index < DIMS; index++) worst = Math.max(worst, Math.abs(alone[index] - inBatch[row][index]));
        }
        await session.release();
        console.log(`${precision}, ${threads} thread(s): alone vs in a batch of 32, max abs diff ${worst.toExponential(2)}`);
        expect(worst).toBeLessThanOrEqual(1e-6);
      });
    }
  }
});
