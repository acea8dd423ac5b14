import { pino, type Logger } from "pino";

/** The service logger type: structured JSON lines. */
export type { Logger };

/**
 * Creates the JSON logger. Secrets never reach it: auth headers and keys are
 * redacted by path wherever a request object is logged.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "sutra-embedder" },
    redact: ["req.headers.authorization", "req.headers[\"x-api-key\"]", "apiKey", "token"],
  });
}
