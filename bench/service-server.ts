/**
 * Child process of the service benchmark: the real service (real worker pool,
 * ONNX sessions, the built default model, default settings of `sutra serve`)
 * on 127.0.0.1, port 0, started with `startRealService` as the end-to-end tests
 * do. Its one port speaks HTTP/1.1 and HTTP/2, so both URLs are the same. It
 * reports its main thread's event-loop delay, its CPU time and its inference
 * batch counts (read from its metrics object) to the bench over IPC; no route
 * is added to the service for them. `--api-key KEY` turns API-key
 * authentication on with that one key (the flood phase).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startRealService } from "../test/support/real-service.js";
import { serveBenchProtocol } from "./server-process.js";

const modelsDir = mkdtempSync(join(tmpdir(), "sutra-bench-models-"));
const { values } = parseArgs({ options: { "api-key": { type: "string" } } });
const apiKey = values["api-key"];
const running = await startRealService({ modelsDir, ...(apiKey ? { authMode: "api-key", apiKeys: apiKey } : {}) });
const { batchSize } = running.service.metrics;

/** Inference batches and the texts in them so far, from the service's own `sutra_batch_size` histogram. */
async function readBatchCounters(): Promise<Record<string, number>> {
  const { values } = await batchSize.get();
  const total = (suffix: string) => values.find((value) => value.metricName === `sutra_batch_size_${suffix}`)?.value ?? 0;
  return { batches: total("count"), batchedTexts: total("sum") };
}

serveBenchProtocol(
  { http2: running.baseUrl, http1: running.baseUrl },
  async () => {
    await running.stop();
    rmSync(modelsDir, { recursive: true, force: true });
  },
  readBatchCounters,
);
