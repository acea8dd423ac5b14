import { Command } from "commander";
import { registerCommands } from "./commands/register-commands.js";
import { addServeOptions, readServeConfig } from "./serve-options.js";

/** The most a drain may take: past it the process exits 1, whatever is still open. */
const DRAIN_TIMEOUT_MS = 10_000;

const program = new Command("sutra").description("Sutra Embedder: text embeddings over gRPC, Connect, gRPC-Web and REST");

addServeOptions(program.command("serve").description("start the embedding server")).action(async (_options, command: Command) => {
  const config = readServeConfig(command);
  // The service's modules (ONNX Runtime, SQLite, every transport) load here, not at the top, so
  // `sutra --help` and the client commands start without them.
  const [{ createLogger }, { buildService }] = await Promise.all([import("../observability/logger.js"), import("./build-service.js")]);
  const logger = createLogger(config.logLevel);
  if (config.authMode === "none" && config.host !== "127.0.0.1" && config.host !== "localhost" && config.host !== "::1") {
    logger.warn({ host: config.host }, "listening beyond loopback without authentication (set SUTRA_AUTH_MODE)");
  }
  const service = await buildService(config, logger).catch((error: unknown) => {
    logger.fatal({ err: error }, `cannot start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
  await new Promise<void>((resolve, reject) => {
    service.server.once("error", reject);
    service.server.listen(config.port, config.host, resolve);
  });
  const address = service.server.address();
  logger.info({ address }, "listening");
  const ready = service.start().then(() => logger.info({ health: service.embedder.health().state }, "default model loaded"));

  const shutdown = async (signal: string) => {
    logger.info({ signal }, "draining");
    setTimeout(() => {
      logger.error({ timeoutMs: DRAIN_TIMEOUT_MS }, "drain timed out; exiting");
      process.exit(1);
    }, DRAIN_TIMEOUT_MS).unref();
    // The server closes first, so open streams hand the chunks they hold to the pipeline before it refuses work.
    const closed = new Promise<void>((resolve) => service.server.close(() => resolve()));
    service.embedder.beginShutdown();
    await ready.catch(() => undefined);
    await service.close();
    // Exiting with a connection open would cut what it has not flushed: an answer, a stream's status.
    await closed;
    logger.info("stopped");
    process.exit(0);
  };
  // A signal may arrive twice (sent to the process group and relayed by a wrapper such as npx or tsx):
  // a repeated SIGTERM must not end the drain; a second Ctrl-C (SIGINT) is taken as "stop now".
  let draining = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!draining) {
      draining = true;
      void shutdown(signal);
    } else if (signal === "SIGINT") {
      logger.warn("second SIGINT; exiting without waiting for the drain");
      process.exit(1);
    }
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
});

registerCommands(program);
await program.parseAsync();
