/**
 * Child process of the service benchmark: the real service (real worker pool,
 * ONNX sessions, the built default model, the settings of `sutra serve` from its
 * environment) on 127.0.0.1, port 0, started with `startRealService` as the end-to-end
 * tests do. Its one port speaks HTTP/1.1 and HTTP/2, so both URLs are the same. It
 * reports its main thread's event-loop delay, its CPU time and its inference
 * batch counts and tokens (read from its metrics object) to the bench over IPC; no route
 * is added to the service for them. `--api-key KEY` turns API-key
 * authentication on with that one key (the flood phase); `--models-dir DIR` serves the
 * models of DIR (kept), instead of an empty folder of its own (removed at the end).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startRealService } from "../test/support/real-service.js";
import { serveBenchProtocol } from "./server-process.js";

const { values } = parseArgs({ options: { "api-key": { type: "string" }, "models-dir": { type: "string" } } });
const ownModelsDir = values["models-dir"] === undefined ? mkdtempSync(join(tmpdir(), "sutra-bench-models-")) : undefined;
const apiKey = values["api-key"];
const running = await startRealService({ modelsDir: values["models-dir"] ?? ownModelsDir, ...(apiKey ? { authMode: "api-key", apiKeys: apiKey } : {}) });
const { batchSize, batchTokensTotal } = running.service.metrics;

/**
 * Inference batches and the texts in them so far, from the service's own `sutra_batch_size`
 * histogram, and their content and padding tokens (`sutra_batch_tokens_total`).
 */
async function readBatchCounters(): Promise<Record<string, number>> {
  const sizes = (await batchSize.get()).values;
  const tokens = (await batchTokensTotal.get()).values;
  const total = (suffix: string) => sizes.find((value) => value.metricName === `sutra_batch_size_${suffix}`)?.value ?? 0;
  const ofKind = (kind: string) => tokens.find((value) => value.labels.kind === kind)?.value ?? 0;
  return { batches: total("count"), batchedTexts: total("sum"), contentTokens: ofKind("content"), paddingTokens: ofKind("padding") };
}

serveBenchProtocol(
  { http2: running.baseUrl, http1: running.baseUrl },
  async () => {
    await running.stop();
    if (ownModelsDir !== undefined) rmSync(ownModelsDir, { recursive: true, force: true });
  },
  readBatchCounters,
);
