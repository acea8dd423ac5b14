import { mkdtempSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { buildService, type BuildServiceOptions, type Service } from "../../src/cli/build-service.js";
import { addServeOptions, readServeConfig, type ServeConfig } from "../../src/cli/serve-options.js";
import { createLogger, type Logger } from "../../src/observability/logger.js";

/** A real service (real pool, real ONNX sessions, the built default model) listening on loopback. */
export interface RunningService {
  service: Service;
  baseUrl: string;
  port: number;
  /** Drains and stops the service; rejects when it does not stop within 10 s. */
  stop(): Promise<void>;
}

/** The settings `sutra serve` takes with no flags (env vars of the test process aside). */
function defaultServeConfig(): ServeConfig {
  const command = addServeOptions(new Command("serve"));
  command.parse([], { from: "user" });
  return readServeConfig(command);
}

/**
 * Builds and starts the whole service on 127.0.0.1 port 0 with an empty models
 * folder (the built-in default model must still serve). `overrides` replace
 * settings of `sutra serve`; `logger` replaces the silent default (to read logs); `build`
 * changes how the service is put together (e.g. the inference worker module).
 */
export async function startRealService(overrides: Partial<ServeConfig> = {}, logger?: Logger, build: BuildServiceOptions = {}): Promise<RunningService> {
  const config: ServeConfig = {
    ...defaultServeConfig(),
    host: "127.0.0.1",
    port: 0,
    modelsDir: mkdtempSync(join(tmpdir(), "sutra-models-")),
    logLevel: "silent",
    cacheSize: 0,
    dataDir: "",
    ...overrides,
  };
  const service = await buildService(config, logger ?? createLogger(config.logLevel), build);
  await new Promise<void>((resolve) => service.server.listen(0, "127.0.0.1", resolve));
  await service.start();
  const { port } = service.server.address() as AddressInfo;
  return {
    service,
    baseUrl: `http://127.0.0.1:${port}`,
    port,
    async stop() {
      // As `sutra serve` does on SIGTERM: the server starts draining first, so chunks streams hold are embedded, not refused.
      const closed = new Promise<void>((resolve) => service.server.close(() => resolve()));
      service.embedder.beginShutdown();
      const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("service did not stop within 10 s")), 10_000).unref());
      await Promise.race([Promise.all([closed, service.close()]), timeout]);
    },
  };
}
