import { readFileSync } from "node:fs";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmbedderService, Quantization, type EmbeddingConfig, type GenerateEmbeddingsResponse } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { startRealService, type RunningService } from "../support/real-service.js";

const PASSAGES = JSON.parse(readFileSync(new URL("../../bench/corpora/passages.json", import.meta.url), "utf8")) as string[];
const PROBES = ["The probe sentence whose vector must not move.", "短い文", "An emoji 🚀 and punctuation!!!"];
const PRECISIONS: Array<{ name: string; config: Partial<EmbeddingConfig> }> = [
  { name: "fp32", config: { quantization: Quantization.NONE } },
  { name: "fp16", config: { useFp16: true } },
  { name: "int8", config: { quantization: Quantization.INT8 } },
  { name: "int4", config: { quantization: Quantization.INT4 } },
];

describe("batch invariance through the server", () => {
  let running: RunningService;
  beforeAll(async () => {
    running = await startRealService();
  });
  afterAll(() => running?.stop());

  for (const { name, config } of PRECISIONS) {
    it(`${name}: a text alone equals the same text embedded while 64 other clients send other texts`, async () => {
      const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
      const alone: GenerateEmbeddingsResponse[] = [];
      for (const text of PROBES) alone.push(await client.generateEmbeddings({ texts: [text], config, model: "custom" }));
      expect(alone[0].modelInfo?.precision).toBe(name);
      let stop = false;
      const noise = Array.from({ length: 64 }, async (_, clientIndex) => {
        const noisy = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
        let sent = 0;
        while (!stop) {
          const length = 1 + ((clientIndex * 7 + sent) % 40);
          await noisy.generateEmbeddings({ texts: [`client ${clientIndex} message ${sent} ${"word ".repeat(length)}`], config, model: "custom" });
          sent++;
        }
        return sent;
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      const underLoad = await Promise.all(PROBES.map((text) => client.generateEmbeddings({ texts: [text], config, model: "custom" })));
      stop = true;
      const sent = await Promise.all(noise);
      expect(sent.reduce((sum, count) => sum + count, 0)).toBeGreaterThan(64);
      let worst = 0;
      underLoad.forEach((response, probe) => {
        const expected = alone[probe].embeddings[0].values;
        response.embeddings[0].values.forEach((value, index) => {
          worst = Math.max(worst, Math.abs(value - expected[index]));
        });
      });
      expect(worst).toBeLessThanOrEqual(1e-6);
    });

    it(`${name}: texts of every length get the same bits alone and in batches of other lengths and sizes`, async () => {
      const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
      // Passages of the bench corpus cut to 1..200 words: padded lengths of every remainder.
      const words = PASSAGES.join(" ").split(/\s+/);
      const texts = Array.from({ length: 48 }, (_, index) => words.slice(index * 211, index * 211 + 1 + ((index * 37) % 200)).join(" "));
      const alone = await Promise.all(texts.map(async (text) => (await client.generateEmbeddings({ texts: [text], config, model: "custom" })).embeddings[0].values));
      for (const size of [2, 3, 7, 48]) {
        for (let start = 0; start < texts.length; start += size) {
          const answer = await client.generateEmbeddings({ texts: texts.slice(start, start + size), config, model: "custom" });
          answer.embeddings.forEach((embedding, row) => expect(embedding.values, `text ${start + row} in a batch of ${size}`).toEqual(alone[start + row]));
        }
      }
    });
  }
});
