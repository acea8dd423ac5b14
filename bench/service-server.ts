/**
 * Child process of the service benchmark: the real service (real worker pool,
 * ONNX sessions, the built default model, default settings of `sutra serve`)
 * on 127.0.0.1, port 0, started with `startRealService` as the end-to-end tests
 * do. Its one port speaks HTTP/1.1 and HTTP/2, so both URLs are the same. It
 * reports its main thread's event-loop delay to the bench over IPC (no route is
 * added to the service for it).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRealService } from "../test/support/real-service.js";
import { serveBenchProtocol } from "./server-process.js";

const modelsDir = mkdtempSync(join(tmpdir(), "sutra-bench-models-"));
const running = await startRealService({ modelsDir });
serveBenchProtocol({ http2: running.baseUrl, http1: running.baseUrl }, async () => {
  await running.stop();
  rmSync(modelsDir, { recursive: true, force: true });
});
