import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { readModel } from "../../onnx/model-io.js";
import { buildPrecisionVariants, toManifestVariants, type VariantLogger } from "../../onnx/quantize/build-variants.js";
import { loadTokenizer } from "../../tokenize/index.js";
import type { ModelManifest } from "../manifest.js";

/** Varied texts the quality gate compares fp32 and each variant on. */
const CALIBRATION_TEXTS = [
  "What is the capital of France?",
  "Paris is the capital and most populous city of France.",
  "How do I reset my password if I no longer have access to my email?",
  "The quick brown fox jumps over the lazy dog.",
  "Embedding models map text to vectors so that similar meanings lie close together.",
  "This blender is loud but it crushes ice in seconds; worth the price.",
  "Error: connection refused when the client starts before the server is listening.",
  "Compare the battery life of the two laptops under a typical office workload.",
  "Rain is expected tomorrow afternoon, with clearing skies by the evening.",
  "A short one.",
  "Numbers like 3.14159, 2026 and 42 appear in text too, as do URLs such as example.com/path?q=1.",
  "Mixed-case WORDS, punctuation!!! and    irregular   spacing should not break anything.",
  "Photosynthesis converts light energy into chemical energy stored in glucose.",
  "The committee postponed the vote until every member had read the full report.",
  "Install the package, set the environment variable, then restart the service.",
  "Which of these phones has the better camera in low light?",
];
const CALIBRATION_BATCH = 8;

/**
 * The `prepareDownload` hook of the registry: builds the fp16, int8 and int4 variants of a
 * downloaded model with our ONNX tooling (src/onnx/quantize), each kept only if it passes its
 * quality gate against fp32 on {@link CALIBRATION_TEXTS} tokenized with the model's own
 * tokenizer, and returns the manifest with the variants that passed. A model the tooling
 * cannot convert keeps fp32 only (logged), it is not a failed download.
 */
export function createVariantPreparer(logger?: VariantLogger) {
  return async (dir: string, manifest: ModelManifest): Promise<ModelManifest> => {
    const sourceFile = manifest.variants.fp32?.file ?? "model.onnx";
    try {
      const graph = (await readModel(join(dir, sourceFile))).graph;
      const inputNames = new Set((graph?.input ?? []).map((input) => input.name));
      const tokenizer = await loadTokenizer(join(dir, manifest.tokenizer), { maxTokens: Math.min(manifest.maxTokens, 128), paddingSide: manifest.paddingSide });
      const feeds: Array<Record<string, ort.Tensor>> = [];
      for (let start = 0; start < CALIBRATION_TEXTS.length; start += CALIBRATION_BATCH) {
        const padded = tokenizer.pad(tokenizer.encodeBatch(CALIBRATION_TEXTS.slice(start, start + CALIBRATION_BATCH)));
        const dims = [padded.batchSize, padded.sequenceLength];
        const all: Record<string, BigInt64Array> = {
          input_ids: padded.inputIds,
          attention_mask: padded.attentionMask,
          token_type_ids: new BigInt64Array(padded.inputIds.length),
          position_ids: padded.positionIds,
        };
        feeds.push(Object.fromEntries([...inputNames].filter((name) => all[name]).map((name) => [name, new ort.Tensor("int64", all[name], dims)])));
      }
      const results = await buildPrecisionVariants(dir, {
        sourceFile,
        calibrationFeeds: feeds,
        output: manifest.output,
        pooling: manifest.pooling,
        logger,
      });
      return { ...manifest, variants: { ...manifest.variants, ...toManifestVariants(results) } };
    } catch (error) {
      logger?.warn({ dir, err: error }, "precision variants not built; serving fp32 only");
      return manifest;
    }
  };
}
