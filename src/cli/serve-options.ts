import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import { parse as parseYaml } from "yaml";
import type { HardwareProfileName } from "../domain/types.js";

/** Settings of `sutra serve`, after flags, env vars, config file and defaults. */
export interface ServeConfig {
  host: string;
  port: number;
  modelsDir: string;
  defaultModel: string;
  profile: HardwareProfileName;
  cuda: boolean;
  maxInputs: number;
  maxQueue: number;
  maxBodyBytes: number;
  tlsCert?: string;
  tlsKey?: string;
  logLevel: string;
}

const PROFILES = ["auto", "minimal", "low", "medium", "high", "extreme", "desktop", "server", "h100"];

const integer = (value: string): number => {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) throw new Error(`expected a non-negative integer, got "${value}"`);
  return parsed;
};

/**
 * Declares the `serve` flags, each with its env var and default, so `--help`
 * lists them all. Precedence: flag > env var > config file (`--config`) > default.
 */
export function addServeOptions(command: Command): Command {
  return command
    .addOption(new Option("--config <file>", "YAML or JSON file with any of these settings (camelCase keys)").env("SUTRA_CONFIG"))
    .addOption(new Option("--host <host>", "interface to listen on").env("SUTRA_HOST").default("127.0.0.1"))
    .addOption(new Option("--port <port>", "port for every protocol").env("SUTRA_PORT").default(8080).argParser(integer))
    .addOption(new Option("--models-dir <dir>", "folder of user models (the built-in default model is always available)").env("SUTRA_MODELS_DIR").default("./models"))
    .addOption(new Option("--default-model <id>", "model behind the presets and an empty `model`").env("SUTRA_DEFAULT_MODEL").default("universal-sentence-encoder-lite"))
    .addOption(new Option("--profile <name>", "hardware profile").env("SUTRA_PROFILE").default("auto").choices(PROFILES))
    .addOption(new Option("--cuda", "try the CUDA execution provider (falls back to CPU when unavailable)").env("SUTRA_CUDA").default(false))
    .addOption(new Option("--max-inputs <n>", "most texts per request").env("SUTRA_MAX_INPUTS").default(2048).argParser(integer))
    .addOption(new Option("--max-queue <n>", "most texts waiting for inference; beyond it requests get OVERLOADED (429) at once").env("SUTRA_MAX_QUEUE").default(8192).argParser(integer))
    .addOption(new Option("--max-body-bytes <n>", "largest request body in bytes").env("SUTRA_MAX_BODY_BYTES").default(4 * 1024 * 1024).argParser(integer))
    .addOption(new Option("--tls-cert <file>", "PEM certificate; with --tls-key serves TLS with ALPN (h2, http/1.1)").env("SUTRA_TLS_CERT"))
    .addOption(new Option("--tls-key <file>", "PEM private key").env("SUTRA_TLS_KEY"))
    .addOption(new Option("--log-level <level>", "log level").env("SUTRA_LOG_LEVEL").default("info").choices(["fatal", "error", "warn", "info", "debug", "trace", "silent"]));
}

/**
 * Reads the parsed options of `command`, layering the config file under flags
 * and env vars: a setting whose value came from the default takes the file's
 * value when the file has one.
 */
export function readServeConfig(command: Command): ServeConfig {
  const options = command.opts<Record<string, unknown>>();
  if (typeof options.config === "string") {
    const text = readFileSync(options.config, "utf8");
    const file = (options.config.endsWith(".json") ? JSON.parse(text) : parseYaml(text)) as Record<string, unknown>;
    for (const [key, value] of Object.entries(file ?? {})) {
      if (!(key in options)) throw new Error(`config file ${options.config}: unknown setting "${key}"`);
      if (command.getOptionValueSource(key) === "default") options[key] = value;
    }
  }
  return {
    host: String(options.host),
    port: Number(options.port),
    modelsDir: String(options.modelsDir),
    defaultModel: String(options.defaultModel),
    profile: options.profile as HardwareProfileName,
    cuda: options.cuda === true || options.cuda === "true" || options.cuda === "1",
    maxInputs: Number(options.maxInputs),
    maxQueue: Number(options.maxQueue),
    maxBodyBytes: Number(options.maxBodyBytes),
    tlsCert: options.tlsCert as string | undefined,
    tlsKey: options.tlsKey as string | undefined,
    logLevel: String(options.logLevel),
  };
}
