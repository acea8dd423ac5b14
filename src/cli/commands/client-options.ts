import { Command, Option } from "commander";
import type { NodeProtocol, NodeSutraClient } from "../../client/node.js";

/** Settings every client command shares. */
export interface ClientSettings {
  server: string;
  protocol: NodeProtocol;
  token?: string;
  timeout?: number;
  retries: number;
}

const positiveInteger = (value: string): number => {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) throw new Error(`expected a positive integer, got "${value}"`);
  return parsed;
};

/** Parses a positive integer flag value (commander argParser). */
export { positiveInteger };

/**
 * Declares the flags of a command that talks to a server: where it is
 * (`--server`/`SUTRA_URL`), the protocol, the API key or JWT
 * (`--token`/`SUTRA_API_KEY`), the per-attempt deadline and the attempts the
 * SDK makes on retryable failures.
 */
export function addClientOptions(command: Command): Command {
  return command
    .addOption(new Option("--server <url>", "server base URL").env("SUTRA_URL").default("http://127.0.0.1:8080"))
    .addOption(new Option("--protocol <protocol>", "wire protocol").choices(["grpc", "connect", "grpc-web"]).default("grpc"))
    .addOption(new Option("--token <token>", "API key or JWT, sent as a Bearer token; prefer the env var to a flag").env("SUTRA_API_KEY"))
    .addOption(new Option("--timeout <ms>", "deadline of each attempt in ms (default: none)").argParser(positiveInteger))
    .addOption(new Option("--retries <n>", "attempts in all on retryable failures (OVERLOADED, RATE_LIMITED, SHUTTING_DOWN, ...)").default(5).argParser(positiveInteger));
}

/**
 * The SDK client for a command's flags; `onRetry` hears every retry (the CLI logs them to stderr).
 * The SDK (connect-node, protobuf-es, the generated services) is imported here, when a command
 * runs, so `sutra --help` starts without it.
 */
export async function clientFromOptions(settings: ClientSettings, extra: { concurrency?: number; onRetry?: (line: string) => void } = {}): Promise<NodeSutraClient> {
  const { createNodeClient } = await import("../../client/node.js");
  return createNodeClient({
    baseUrl: settings.server,
    protocol: settings.protocol,
    token: settings.token,
    timeoutMs: settings.timeout,
    concurrency: extra.concurrency,
    retry: {
      maxAttempts: settings.retries,
      onRetry: extra.onRetry
        ? (event) => extra.onRetry?.(`${event.method}: ${event.facts.reason ?? `code ${event.facts.code}`}; retry ${event.attempt} in ${Math.round(event.delayMs)} ms`)
        : undefined,
    },
  });
}
