/**
 * The real service in a child process of its own, so a test can measure the
 * server's memory apart from its clients; started by `startChildService`
 * (test/support/child-service.ts). Settings come from the `SUTRA_*`
 * environment as for `sutra serve`. It talks over the IPC channel only:
 *
 * - child -> parent `{type: "ready", port}` once it listens;
 * - parent -> child `{type: "stats"}`, answered `{type: "stats", rss,
 *   heapUsed, external, streams, connections}` (process memory in bytes after
 *   a garbage collection when `--expose-gc` is on, the stream registry's
 *   counters, and the TCP connections the server holds open);
 * - parent -> child `{type: "stop"}`: the service drains and the process exits.
 */
import { startRealService } from "./real-service.js";

const running = await startRealService();
process.send?.({ type: "ready", port: running.port });
process.on("message", (message: { type: string }) => {
  if (message.type === "stats") {
    (globalThis as { gc?: () => void }).gc?.();
    const memory = process.memoryUsage();
    running.service.server.getConnections((_error, connections) => {
      process.send?.({
        type: "stats",
        rss: memory.rss,
        heapUsed: memory.heapUsed,
        external: memory.external,
        streams: running.service.streams.stats(),
        connections,
      });
    });
  } else if (message.type === "stop") {
    void running.stop().finally(() => process.exit(0));
  }
});
