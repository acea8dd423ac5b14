import { readFileSync } from "node:fs";
import { Command, InvalidArgumentError, Option } from "commander";
import { parse as parseYaml } from "yaml";
import type { ConnectionLimits } from "../api/create-server.js";
import { AUTH_MODES, type AuthMode } from "../auth/create-authenticator.js";
import type { DimensionsPolicy, HardwareProfileName } from "../domain/types.js";
import { PRESETS } from "../models/model-store.js";
import { DIMENSIONS_POLICIES } from "../postprocess/resolve-dimensions.js";

/**
 * Settings of `sutra serve`, after flags, env vars, config file and defaults. A setting with a
 * default is required here: its one default is the one its flag declares in `addServeOptions`
 * (and `--help` shows).
 */
export interface ServeConfig {
  host: string;
  port: number;
  modelsDir: string;
  defaultModel: string;
  /** Local model the `high-quality` preset runs; "" = the default model (another model is never chosen implicitly). */
  highQualityModel: string;
  profile: HardwareProfileName;
  cuda: boolean;
  /** How a `dimensions` the model does not produce is honoured when a request names no policy. */
  dimensionsPolicy: DimensionsPolicy;
  maxInputs: number;
  maxQueue: number;
  /** Engine settings over the profile's; undefined = the profile's (docs/HARDWARE.md). */
  workers?: number;
  intraOpThreads?: number;
  tokenBudget?: number;
  maxBatchSize?: number;
  maxBodyBytes: number;
  tlsCert?: string;
  tlsKey?: string;
  logLevel: string;
  authMode: AuthMode;
  apiKeys?: string;
  apiKeysFile?: string;
  jwtSecret?: string;
  jwtPublicKey?: string;
  jwtIssuer?: string;
  jwtAudience?: string;
  /** Per-principal limits; 0 = none. */
  rateLimitRpm: number;
  rateLimitTpm: number;
  rateLimitBurst: number;
  /** Most embedding requests in the pipeline at once; 0 = no limit. */
  maxConcurrency: number;
  /** `alias=model,...`; OpenAI's model names alias the default model unless given here. */
  modelAliases: string;
  /** Hugging Face–compatible hub for DownloadModel. */
  hfEndpoint: string;
  hfToken?: string;
  /** Comma-separated model ids (or `org/*`) DownloadModel accepts; empty = any. */
  modelAllowlist: string;
  /** Memory the loaded models other than the default may take (MB); 0 = unlimited. */
  modelMemoryBudgetMb: number;
  /** Embedding cache entries; 0 = off. */
  cacheSize: number;
  /** Embedding cache entry lifetime in seconds; 0 = no expiry. */
  cacheTtlS: number;
  /** Folder of the document job store; "" = jobs off (their rpcs answer NOT_IMPLEMENTED). */
  dataDir: string;
  /** Hours a finished job and its results are kept. */
  jobRetentionH: number;
  /** Most documents in one job. */
  jobMaxDocuments: number;
  /** Most bytes of document text and metadata in one job. */
  jobMaxBytes: number;
  /** Most queued and running jobs per principal. */
  jobMaxActive: number;
  /** Jobs running at once. */
  jobConcurrency: number;
  /** Upstream providers file (YAML or JSON, docs/PROVIDERS.md); absent = local models only. */
  providersFile?: string;
  /** Comma-separated provider names fallback walks; overrides the file's `fallback_chain`. */
  fallbackChain?: string;
  /** Comma-separated provider names requests may use; empty = every configured provider. */
  providerAllowlist?: string;
  /** Concurrent streams one HTTP/2 connection may open (sent in SETTINGS). */
  maxStreamsPerConnection: number;
  /** Open grpc.health.v1 Watch streams in all; beyond: TOO_MANY_STREAMS. */
  maxWatchStreams: number;
  /** Open grpc.health.v1 Watch streams per HTTP/2 connection; beyond: TOO_MANY_STREAMS. */
  maxWatchStreamsPerConnection: number;
  /** Bytes queued for one WebSocket client beyond which the server stops reading it (twice that: closed with 1008). */
  wsMaxBufferedBytes: number;
  /** Milliseconds between the server's pings on a WebSocket connection; two unanswered close it. */
  wsPingIntervalMs: number;
  /** Open connections per client address; 0 = no cap (a proxy carries many clients on one address). */
  maxConnectionsPerAddress: number;
  /** Comma-separated host names served besides loopback names when auth is `none` (DNS rebinding defence). */
  allowedHosts: string;
  /** Comma-separated browser origins allowed cross-origin (CORS, state-changing calls, WebSocket); empty = same origin only. */
  corsOrigins: string;
}

const PROFILES = ["auto", "minimal", "low", "medium", "high", "extreme", "desktop", "server", "h100"];

// Parsers of numeric settings, for flags, env vars and the config file alike. An empty or blank
// value is refused (Number("") is 0). InvalidArgumentError lets commander name the flag or env var.
const numberParser = (expected: string, accepts: (parsed: number) => boolean) => (value: string): number => {
  const parsed = Number(value);
  if (value.trim() === "" || !accepts(parsed)) throw new InvalidArgumentError(`expected ${expected}, got "${value}"`);
  return parsed;
};
const nonNegative = numberParser("a non-negative number", (parsed) => Number.isFinite(parsed) && parsed >= 0);
const positive = numberParser("a positive number", (parsed) => Number.isFinite(parsed) && parsed > 0);
const positiveInteger = numberParser("a positive integer", (parsed) => Number.isInteger(parsed) && parsed > 0);
/** A model id or alias, never a preset: a preset naming a preset would name no model. */
const modelName = (value: string): string => {
  if ((PRESETS as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected a model id, got the preset "${value}"`);
  return value;
};
const integer = numberParser("a non-negative integer", (parsed) => Number.isInteger(parsed) && parsed >= 0);

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
    .addOption(new Option("--high-quality-model <id>", "local model behind the `high-quality` preset (empty: the default model)").env("SUTRA_HIGH_QUALITY_MODEL").default("").argParser(modelName))
    .addOption(new Option("--profile <name>", "hardware profile").env("SUTRA_PROFILE").default("auto").choices(PROFILES))
    .addOption(new Option("--cuda", "try the CUDA execution provider (falls back to CPU when unavailable)").env("SUTRA_CUDA").default(false))
    .addOption(new Option("--dimensions-policy <policy>", "how a `dimensions` the model does not produce natively (nor as a Matryoshka size) is honoured when a request names no dimensions_policy: reduce (truncate, renormalise; below the native size only), pad (zeros appended, renormalised), ignore (the native size), reject (INVALID_DIMENSIONS)").env("SUTRA_DIMENSIONS_POLICY").default("reduce").choices(DIMENSIONS_POLICIES))
    .addOption(new Option("--max-inputs <n>", "most texts per request").env("SUTRA_MAX_INPUTS").default(2048).argParser(integer))
    .addOption(new Option("--max-queue <n>", "most texts waiting for inference, per priority (online, jobs): a request that would go past it gets OVERLOADED (429) at once, except that a request of any size finds room when nothing of its priority waits").env("SUTRA_MAX_QUEUE").default(8192).argParser(integer))
    .addOption(new Option("--workers <n>", "inference worker threads (unset: the profile's; docs/HARDWARE.md)").env("SUTRA_WORKERS").argParser(positiveInteger))
    .addOption(new Option("--intra-op-threads <n>", "ONNX Runtime threads in each worker (unset: the profile's, cores / workers)").env("SUTRA_INTRA_OP_THREADS").argParser(positiveInteger))
    .addOption(new Option("--token-budget <n>", "most padded tokens (texts x longest text) in one inference batch (unset: the profile's)").env("SUTRA_TOKEN_BUDGET").argParser(positiveInteger))
    .addOption(new Option("--max-batch-size <n>", "most texts in one inference batch (unset: the profile's)").env("SUTRA_MAX_BATCH_SIZE").argParser(positiveInteger))
    .addOption(new Option("--max-body-bytes <n>", "largest request body in bytes").env("SUTRA_MAX_BODY_BYTES").default(4 * 1024 * 1024).argParser(integer))
    .addOption(new Option("--tls-cert <file>", "PEM certificate; with --tls-key serves TLS with ALPN (h2, http/1.1)").env("SUTRA_TLS_CERT"))
    .addOption(new Option("--tls-key <file>", "PEM private key").env("SUTRA_TLS_KEY"))
    .addOption(new Option("--log-level <level>", "log level").env("SUTRA_LOG_LEVEL").default("info").choices(["fatal", "error", "warn", "info", "debug", "trace", "silent"]))
    .addOption(new Option("--auth-mode <mode>", "authentication on every route but health and metrics").env("SUTRA_AUTH_MODE").default("none").choices(AUTH_MODES))
    .addOption(new Option("--api-keys <keys>", "API keys, comma-separated `key` or `key:role` (role user or admin); prefer the env var or a file to a flag").env("SUTRA_API_KEYS"))
    .addOption(new Option("--api-keys-file <file>", "file of API keys, `key` or `key:role` per line, # comments").env("SUTRA_API_KEYS_FILE"))
    .addOption(new Option("--jwt-secret <secret>", "HS256 secret for auth mode jwt (at least 32 bytes)").env("SUTRA_JWT_SECRET"))
    .addOption(new Option("--jwt-public-key <pem-or-file>", "RSA, EC or Ed25519 public key (SPKI PEM, or a file holding it) for auth mode jwt").env("SUTRA_JWT_PUBLIC_KEY"))
    .addOption(new Option("--jwt-issuer <iss>", "required `iss` claim of JWTs").env("SUTRA_JWT_ISSUER"))
    .addOption(new Option("--jwt-audience <aud>", "required `aud` claim of JWTs").env("SUTRA_JWT_AUDIENCE"))
    .addOption(new Option("--rate-limit-rpm <n>", "requests per minute per principal (0 = unlimited)").env("SUTRA_RATE_LIMIT_RPM").default(0).argParser(integer))
    .addOption(new Option("--rate-limit-tpm <n>", "tokens per minute per principal (0 = unlimited)").env("SUTRA_RATE_LIMIT_TPM").default(0).argParser(integer))
    .addOption(new Option("--rate-limit-burst <n>", "requests a principal may send at once (0 = a minute's worth, the RPM)").env("SUTRA_RATE_LIMIT_BURST").default(0).argParser(integer))
    .addOption(new Option("--max-concurrency <n>", "most embedding requests in the pipeline at once; beyond it OVERLOADED (429) at once (0 = unlimited)").env("SUTRA_MAX_CONCURRENCY").default(512).argParser(integer))
    .addOption(new Option("--model-aliases <list>", "model aliases, `alias=model,...`; text-embedding-3-small, -3-large and -ada-002 alias the default model unless set here").env("SUTRA_MODEL_ALIASES").default(""))
    .addOption(new Option("--hf-endpoint <url>", "Hugging Face–compatible hub DownloadModel fetches from").env("HF_ENDPOINT").default("https://huggingface.co"))
    .addOption(new Option("--hf-token <token>", "hub token for gated or private models; prefer the env var to a flag").env("HF_TOKEN"))
    .addOption(new Option("--model-allowlist <ids>", "model ids DownloadModel accepts, comma-separated (`org/*` for an organisation); empty = any").env("SUTRA_MODEL_ALLOWLIST").default(""))
    .addOption(new Option("--model-memory-budget-mb <mb>", "memory for loaded models besides the default (fp32 weights x workers); over it the least recently used is unloaded (0 = unlimited)").env("SUTRA_MODEL_MEMORY_BUDGET_MB").default(0).argParser(nonNegative))
    .addOption(new Option("--cache-size <n>", "embedding cache entries (0 = cache off)").env("SUTRA_CACHE_SIZE").default(10_000).argParser(integer))
    .addOption(new Option("--cache-ttl-s <seconds>", "embedding cache entry lifetime (0 = no expiry)").env("SUTRA_CACHE_TTL_S").default(3600).argParser(nonNegative))
    .addOption(new Option("--data-dir <dir>", "folder of the document job store (jobs survive restarts there); \"\" turns jobs off").env("SUTRA_DATA_DIR").default("./data"))
    .addOption(new Option("--job-retention-h <hours>", "hours a finished job and its results are kept, then deleted").env("SUTRA_JOB_RETENTION_H").default(24).argParser(positive))
    .addOption(new Option("--job-max-documents <n>", "most documents in one job").env("SUTRA_JOB_MAX_DOCUMENTS").default(10_000).argParser(integer))
    .addOption(new Option("--job-max-bytes <n>", "most bytes of document text and metadata in one job (bodies are also bounded by --max-body-bytes)").env("SUTRA_JOB_MAX_BYTES").default(4 * 1024 * 1024).argParser(integer))
    .addOption(new Option("--job-max-active <n>", "most queued and running jobs per principal").env("SUTRA_JOB_MAX_ACTIVE").default(4).argParser(integer))
    .addOption(new Option("--job-concurrency <n>", "jobs running at once (each keeps one batch in inference, below online traffic)").env("SUTRA_JOB_CONCURRENCY").default(1).argParser(integer))
    .addOption(new Option("--providers-file <file>", "upstream providers (YAML or JSON): OpenAI-compatible, TEI, HF Inference; see docs/PROVIDERS.md").env("SUTRA_PROVIDERS_FILE"))
    .addOption(new Option("--fallback-chain <names>", "providers to fall back along, comma-separated (overrides the file's fallback_chain)").env("EMBEDDINGS_FALLBACK_CHAIN"))
    .addOption(new Option("--provider-allowlist <names>", "providers requests may use, comma-separated (others: FORBIDDEN); empty = all configured").env("SUTRA_PROVIDER_ALLOWLIST").default(""))
    .addOption(new Option("--max-streams-per-connection <n>", "concurrent streams one HTTP/2 connection may open (sent in SETTINGS)").env("SUTRA_MAX_STREAMS_PER_CONNECTION").default(100).argParser(positiveInteger))
    .addOption(new Option("--max-watch-streams <n>", "open grpc.health.v1 Watch streams in all; beyond: TOO_MANY_STREAMS (429)").env("SUTRA_MAX_WATCH_STREAMS").default(1000).argParser(integer))
    .addOption(new Option("--max-watch-streams-per-connection <n>", "open grpc.health.v1 Watch streams per connection; beyond: TOO_MANY_STREAMS (429)").env("SUTRA_MAX_WATCH_STREAMS_PER_CONNECTION").default(10).argParser(integer))
    .addOption(new Option("--ws-max-buffered-bytes <n>", "bytes queued for one WebSocket client before the server stops reading it; twice that closes it (1008)").env("SUTRA_WS_MAX_BUFFERED_BYTES").default(4 * 1024 * 1024).argParser(positiveInteger))
    .addOption(new Option("--ws-ping-interval-ms <n>", "milliseconds between the server's pings on a WebSocket connection; two unanswered close it").env("SUTRA_WS_PING_INTERVAL_MS").default(30_000).argParser(positiveInteger))
    .addOption(new Option("--max-connections-per-address <n>", "open connections per client address (0 = no cap; a proxy carries many clients on one address)").env("SUTRA_MAX_CONNECTIONS_PER_ADDRESS").default(0).argParser(integer))
    .addOption(new Option("--allowed-hosts <names>", "with auth none, Host names served besides loopback names, comma-separated (others: 421)").env("SUTRA_ALLOWED_HOSTS").default(""))
    .addOption(new Option("--cors-origins <origins>", "browser origins allowed cross-origin, comma-separated (e.g. https://app.example); empty = same origin only").env("SUTRA_CORS_ORIGINS").default(""));
}

/**
 * Reads the parsed options of `command`, layering the config file under flags
 * and env vars: a setting not given by flag or env var takes the file's value
 * when the file has one. A file value goes through its flag's parser and choices,
 * so an unknown setting or a bad value stops the start (`command.error`, exit 1)
 * with a message naming the file and the setting.
 */
export function readServeConfig(command: Command): ServeConfig {
  const file = command.getOptionValue("config") as unknown;
  if (typeof file === "string") applyConfigFile(command, file);
  const options = command.opts<Record<string, unknown>>();
  return {
    host: String(options.host),
    port: Number(options.port),
    modelsDir: String(options.modelsDir),
    defaultModel: String(options.defaultModel),
    highQualityModel: String(options.highQualityModel),
    profile: options.profile as HardwareProfileName,
    cuda: options.cuda === true,
    dimensionsPolicy: options.dimensionsPolicy as DimensionsPolicy,
    maxInputs: Number(options.maxInputs),
    maxQueue: Number(options.maxQueue),
    workers: options.workers as number | undefined,
    intraOpThreads: options.intraOpThreads as number | undefined,
    tokenBudget: options.tokenBudget as number | undefined,
    maxBatchSize: options.maxBatchSize as number | undefined,
    maxBodyBytes: Number(options.maxBodyBytes),
    tlsCert: options.tlsCert as string | undefined,
    tlsKey: options.tlsKey as string | undefined,
    logLevel: String(options.logLevel),
    authMode: options.authMode as AuthMode,
    apiKeys: options.apiKeys as string | undefined,
    apiKeysFile: options.apiKeysFile as string | undefined,
    jwtSecret: options.jwtSecret as string | undefined,
    jwtPublicKey: options.jwtPublicKey as string | undefined,
    jwtIssuer: options.jwtIssuer as string | undefined,
    jwtAudience: options.jwtAudience as string | undefined,
    rateLimitRpm: Number(options.rateLimitRpm),
    rateLimitTpm: Number(options.rateLimitTpm),
    rateLimitBurst: Number(options.rateLimitBurst),
    maxConcurrency: Number(options.maxConcurrency),
    modelAliases: String(options.modelAliases),
    hfEndpoint: String(options.hfEndpoint),
    hfToken: options.hfToken as string | undefined,
    modelAllowlist: String(options.modelAllowlist),
    modelMemoryBudgetMb: Number(options.modelMemoryBudgetMb),
    cacheSize: Number(options.cacheSize),
    cacheTtlS: Number(options.cacheTtlS),
    dataDir: String(options.dataDir),
    jobRetentionH: Number(options.jobRetentionH),
    jobMaxDocuments: Number(options.jobMaxDocuments),
    jobMaxBytes: Number(options.jobMaxBytes),
    jobMaxActive: Number(options.jobMaxActive),
    jobConcurrency: Number(options.jobConcurrency),
    providersFile: options.providersFile as string | undefined,
    fallbackChain: options.fallbackChain as string | undefined,
    providerAllowlist: String(options.providerAllowlist),
    maxStreamsPerConnection: Number(options.maxStreamsPerConnection),
    maxWatchStreams: Number(options.maxWatchStreams),
    maxWatchStreamsPerConnection: Number(options.maxWatchStreamsPerConnection),
    wsMaxBufferedBytes: Number(options.wsMaxBufferedBytes),
    wsPingIntervalMs: Number(options.wsPingIntervalMs),
    maxConnectionsPerAddress: Number(options.maxConnectionsPerAddress),
    allowedHosts: String(options.allowedHosts),
    corsOrigins: String(options.corsOrigins),
  };
}

/**
 * The settings of `sutra serve` given no flag, env var or config file: the defaults `--help`
 * shows, for code that builds the service or its transport without the command line.
 */
export function serveDefaults(): ServeConfig {
  return readServeConfig(addServeOptions(new Command("serve")));
}

/** The bounds on connections and streams that `config` sets, as the transport takes them. */
export function connectionLimitsOf(config: ServeConfig): ConnectionLimits {
  return {
    maxStreamsPerConnection: config.maxStreamsPerConnection,
    maxWatchStreams: config.maxWatchStreams,
    maxWatchStreamsPerConnection: config.maxWatchStreamsPerConnection,
    maxConnectionsPerAddress: config.maxConnectionsPerAddress,
    webSocketMaxBufferedBytes: config.wsMaxBufferedBytes,
    webSocketPingMs: config.wsPingIntervalMs,
  };
}

/** Sets the settings `file` holds (camelCase keys) wherever neither a flag nor an env var gave one. */
function applyConfigFile(command: Command, file: string): void {
  const fail: (reason: string) => never = (reason) => command.error(`error: config file ${file}: ${reason}`);
  let settings: unknown;
  try {
    const text = readFileSync(file, "utf8");
    settings = file.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    fail(`cannot read it: ${(error as Error).message}`);
  }
  if (settings === null || settings === undefined) return;
  if (typeof settings !== "object" || Array.isArray(settings)) {
    fail("expected a mapping of settings (camelCase keys)");
  }
  for (const [key, value] of Object.entries(settings as Record<string, unknown>)) {
    const option = command.options.find((candidate) => candidate.attributeName() === key);
    if (option === undefined || key === "config") fail(`unknown setting "${key}"`);
    const source = command.getOptionValueSource(key);
    if (source !== undefined && source !== "default") continue;
    try {
      command.setOptionValueWithSource(key, parseFileValue(option, value), "config");
    } catch (error) {
      fail(`setting "${key}": ${(error as Error).message}`);
    }
  }
}

/** A config-file value as its flag would give it: true or false for a switch, else the flag's parser and choices. */
function parseFileValue(option: Option, value: unknown): unknown {
  if (option.isBoolean()) {
    if (typeof value === "boolean") return value;
    if (value === "true" || value === "false") return value === "true";
    throw new InvalidArgumentError(`expected true or false, got ${JSON.stringify(value)}`);
  }
  if (typeof value !== "string" && !(typeof value === "number" && Number.isFinite(value))) {
    throw new InvalidArgumentError(`expected ${option.parseArg ? "a number or string" : "a string"}, got ${JSON.stringify(value)}`);
  }
  const text = String(value);
  return option.parseArg ? option.parseArg(text, undefined) : text;
}
