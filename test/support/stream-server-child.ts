/**
 * The real service in a child process of its own, so a test can measure the
 * server's memory apart from its clients. Run with `fork(..., { execArgv:
 * ["--import", "tsx"] })`; it talks over the IPC channel only:
 *
 * - child -> parent `{type: "ready", port}` once it listens;
 * - parent -> child `{type: "stats"}`, answered `{type: "stats", rss,
 *   heapUsed, external, streams}` (process memory in bytes after a garbage
 *   collection when `--expose-gc` is on, and the stream registry's counters);
 * - parent -> child `{type: "stop"}`: the service drains and the process exits.
 */
import { startRealService } from "./real-service.js";

const running = await startRealService();
process.send?.({ type: "ready", port: running.port });
process.on("message", (message: { type: string }) => {
  if (message.type === "stats") {
    (globalThis as { gc?: () => void }).gc?.();
    const memory = process.memoryUsage();
    process.send?.({ type: "stats", rss: memory.rss, heapUsed: memory.heapUsed, external: memory.external, streams: running.service.streams.stats() });
  } else if (message.type === "stop") {
    void running.stop().finally(() => process.exit(0));
  }
});
