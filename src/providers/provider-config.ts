import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";

/** Kinds of upstream a provider speaks (docs/PROVIDERS.md); `local` is the server's own ONNX models. */
export const PROVIDER_TYPES = ["openai-compatible", "tei", "hf-inference", "local"] as const;

/** A provider kind. */
export type ProviderType = (typeof PROVIDER_TYPES)[number];

/** The name under which the server's own ONNX models are routed (`local:<model>`, `x-provider: local`). */
export const LOCAL_PROVIDER = "local";

/** One model a provider serves. */
export interface ProviderModel {
  id: string;
  dimensions: number;
  /**
   * Equivalence group: providers whose models share a group and dimensions
   * produce interchangeable vectors, so fallback may move between them. Default:
   * the model id (the same id at the same size is taken to be the same model).
   */
  group: string;
}

/** One upstream provider, defaults filled in. The key itself is never held here (see ProvidersConfig.keyOf). */
export interface ProviderConfig {
  name: string;
  type: ProviderType;
  /** Base URL without a trailing slash (`https://api.openai.com/v1`, `http://tei:8080`). */
  baseUrl: string;
  /** Name of the env var holding the API key; absent = no key sent. */
  apiKeyEnv?: string;
  models: ProviderModel[];
  /** Requests per minute sent upstream; 0 = unlimited. */
  rpm: number;
  /** Tokens per minute sent upstream (estimated as chars/4 until the provider reports usage); 0 = unlimited. */
  tpm: number;
  /** Most texts in one upstream call; larger requests are split and reassembled in order. */
  maxBatch: number;
  /** Most upstream calls in flight at once. */
  concurrency: number;
  /** Timeout of one upstream call, and the longest a call waits for an RPM/TPM/concurrency slot. */
  timeoutMs: number;
  /** Retries after the first attempt, for 429, 5xx, timeouts and network errors only. */
  retries: number;
  breaker: { failures: number; cooldownMs: number };
  /** Exponential backoff between retries: base, doubled per retry, capped (1, 2, 4, 8, 16 s by default). */
  backoff: { baseMs: number; maxMs: number };
}

/** The providers file after validation, with keys read from the environment. */
export interface ProvidersConfig {
  providers: ProviderConfig[];
  /** Provider names fallback walks, in order (`EMBEDDINGS_FALLBACK_CHAIN` overrides the file's). */
  fallbackChain: string[];
  /** The API key of a provider, read from its `api_key_env` at load time; never logged or shown. */
  keyOf(name: string): string | undefined;
}

/** Defaults of the optional provider fields. */
export const PROVIDER_DEFAULTS = {
  rpm: 0,
  tpm: 0,
  max_batch: 32,
  concurrency: 4,
  timeout_ms: 30_000,
  retries: 3,
  breaker: { failures: 5, cooldown_ms: 30_000 },
  backoff: { base_ms: 1000, max_ms: 16_000 },
} as const;

/** Where the Hugging Face Inference API is when an `hf-inference` provider names no base URL. */
export const HF_INFERENCE_URL = "https://router.huggingface.co/hf-inference";

const PROVIDER_KEYS = new Set([
  "name", "type", "base_url", "api_key_env", "models", "rpm", "tpm", "max_batch", "concurrency", "timeout_ms", "retries", "breaker", "backoff",
]);
const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/i;

/**
 * Reads and checks a providers file (YAML, or JSON by its `.json` extension;
 * the format is in docs/PROVIDERS.md), reading each key from its env var. Throws an Error that
 * names the file and the offending field (never a key's value): unknown
 * fields, bad types, duplicate names, a chain naming an unknown provider, or an
 * `api_key_env` that is not set.
 */
export function loadProvidersFile(path: string, env: NodeJS.ProcessEnv = process.env): ProvidersConfig {
  const text = readFileSync(path, "utf8");
  let raw: unknown;
  try {
    raw = path.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new Error(`providers file ${path}: not valid ${path.endsWith(".json") ? "JSON" : "YAML"} (${(error as Error).message})`);
  }
  return parseProvidersConfig(raw, env, `providers file ${path}`);
}

/** Checks a parsed providers document; see loadProvidersFile. `where` prefixes error messages. */
export function parseProvidersConfig(raw: unknown, env: NodeJS.ProcessEnv, where = "providers config"): ProvidersConfig {
  const fail = (field: string, why: string): never => {
    throw new Error(`${where}: ${field} ${why}`);
  };
  const document = object(raw, "the document", fail);
  for (const key of Object.keys(document)) {
    if (key !== "providers" && key !== "fallback_chain") fail(key, "is not a known setting (providers, fallback_chain)");
  }
  if (!Array.isArray(document.providers)) fail("providers", "must be a list");
  const keys = new Map<string, string>();
  const providers = (document.providers as unknown[]).map((entry, index) => {
    const at = `providers[${index}]`;
    const item = object(entry, at, fail);
    for (const key of Object.keys(item)) if (!PROVIDER_KEYS.has(key)) fail(`${at}.${key}`, "is not a known provider setting");
    const name = string(item.name, `${at}.name`, fail);
    if (!NAME.test(name)) fail(`${at}.name`, "must be letters, digits, '.', '_' or '-' (no ':')");
    const type = string(item.type, `${at}.type`, fail) as ProviderType;
    if (!PROVIDER_TYPES.includes(type)) fail(`${at}.type`, `must be one of ${PROVIDER_TYPES.join(", ")}`);
    if ((name === LOCAL_PROVIDER) !== (type === "local")) fail(`${at}.type`, `must be local for the provider named "${LOCAL_PROVIDER}", and only for it`);
    const defaultUrl = type === "hf-inference" ? HF_INFERENCE_URL : type === "local" ? "" : undefined;
    const baseUrl = (item.base_url === undefined && defaultUrl !== undefined ? defaultUrl : string(item.base_url, `${at}.base_url`, fail)).replace(/\/+$/, "");
    if (type !== "local" && !/^https?:\/\/[^\s]+$/.test(baseUrl)) fail(`${at}.base_url`, "must be an http(s) URL");
    const apiKeyEnv = item.api_key_env === undefined ? undefined : string(item.api_key_env, `${at}.api_key_env`, fail);
    if (apiKeyEnv !== undefined) {
      const key = env[apiKeyEnv];
      if (key === undefined || key === "") fail(`${at}.api_key_env`, `names ${apiKeyEnv}, which is not set`);
      keys.set(name, key as string);
    }
    if (!Array.isArray(item.models) || item.models.length === 0) fail(`${at}.models`, "must be a non-empty list");
    const models = (item.models as unknown[]).map((modelEntry, modelIndex) => {
      const modelAt = `${at}.models[${modelIndex}]`;
      const model = object(modelEntry, modelAt, fail);
      for (const key of Object.keys(model)) if (!["id", "dimensions", "group"].includes(key)) fail(`${modelAt}.${key}`, "is not a known model setting (id, dimensions, group)");
      const id = string(model.id, `${modelAt}.id`, fail);
      return {
        id,
        dimensions: count(model.dimensions, `${modelAt}.dimensions`, fail, undefined, 1),
        group: model.group === undefined ? id : string(model.group, `${modelAt}.group`, fail),
      };
    });
    const ids = models.map((model) => model.id);
    if (new Set(ids).size !== ids.length) fail(`${at}.models`, "lists a model id twice");
    const breaker = item.breaker === undefined ? {} : object(item.breaker, `${at}.breaker`, fail);
    const backoff = item.backoff === undefined ? {} : object(item.backoff, `${at}.backoff`, fail);
    for (const key of Object.keys(breaker)) if (key !== "failures" && key !== "cooldown_ms") fail(`${at}.breaker.${key}`, "is not a known setting (failures, cooldown_ms)");
    for (const key of Object.keys(backoff)) if (key !== "base_ms" && key !== "max_ms") fail(`${at}.backoff.${key}`, "is not a known setting (base_ms, max_ms)");
    const provider: ProviderConfig = {
      name,
      type,
      baseUrl,
      ...(apiKeyEnv === undefined ? {} : { apiKeyEnv }),
      models,
      rpm: count(item.rpm, `${at}.rpm`, fail, PROVIDER_DEFAULTS.rpm),
      tpm: count(item.tpm, `${at}.tpm`, fail, PROVIDER_DEFAULTS.tpm),
      maxBatch: count(item.max_batch, `${at}.max_batch`, fail, PROVIDER_DEFAULTS.max_batch, 1),
      concurrency: count(item.concurrency, `${at}.concurrency`, fail, PROVIDER_DEFAULTS.concurrency, 1),
      timeoutMs: count(item.timeout_ms, `${at}.timeout_ms`, fail, PROVIDER_DEFAULTS.timeout_ms, 1),
      retries: count(item.retries, `${at}.retries`, fail, PROVIDER_DEFAULTS.retries),
      breaker: {
        failures: count(breaker.failures, `${at}.breaker.failures`, fail, PROVIDER_DEFAULTS.breaker.failures, 1),
        cooldownMs: count(breaker.cooldown_ms, `${at}.breaker.cooldown_ms`, fail, PROVIDER_DEFAULTS.breaker.cooldown_ms),
      },
      backoff: {
        baseMs: count(backoff.base_ms, `${at}.backoff.base_ms`, fail, PROVIDER_DEFAULTS.backoff.base_ms),
        maxMs: count(backoff.max_ms, `${at}.backoff.max_ms`, fail, PROVIDER_DEFAULTS.backoff.max_ms),
      },
    };
    return provider;
  });
  const names = providers.map((provider) => provider.name);
  const duplicate = names.find((name, index) => names.indexOf(name) !== index);
  if (duplicate !== undefined) fail("providers", `names "${duplicate}" twice`);
  const chain = document.fallback_chain === undefined ? [] : document.fallback_chain;
  if (!Array.isArray(chain) || !chain.every((name) => typeof name === "string")) fail("fallback_chain", "must be a list of provider names");
  const fallbackChain = chain as string[];
  checkChain(fallbackChain, names, (why) => fail("fallback_chain", why));
  return { providers, fallbackChain, keyOf: (name) => keys.get(name) };
}

/**
 * Parses `EMBEDDINGS_FALLBACK_CHAIN` (comma-separated provider names) against
 * the configured providers; `local` is always known. Throws an Error naming an
 * unknown provider.
 */
export function parseFallbackChain(value: string, providerNames: readonly string[]): string[] {
  const chain = value.split(",").map((name) => name.trim()).filter(Boolean);
  checkChain(chain, providerNames, (why) => {
    throw new Error(`EMBEDDINGS_FALLBACK_CHAIN ${why}`);
  });
  return chain;
}

function checkChain(chain: readonly string[], names: readonly string[], fail: (why: string) => never): void {
  for (const name of chain) {
    if (name !== LOCAL_PROVIDER && !names.includes(name)) fail(`names "${name}", which is not a configured provider`);
  }
  if (new Set(chain).size !== chain.length) fail("names a provider twice");
}

/**
 * The configuration as the admin route shows it: every setting, with the key
 * replaced by whether it is set (`api_key: "<redacted>"` or absent); the env
 * var's name is shown, its value never.
 */
export function redactedProvidersConfig(config: ProvidersConfig, allowlist: readonly string[]): Record<string, unknown> {
  return {
    providers: config.providers.map((provider) => ({
      name: provider.name,
      type: provider.type,
      base_url: provider.baseUrl,
      ...(provider.apiKeyEnv === undefined ? {} : { api_key_env: provider.apiKeyEnv, api_key: "<redacted>" }),
      models: provider.models.map((model) => ({ id: model.id, dimensions: model.dimensions, group: model.group })),
      rpm: provider.rpm,
      tpm: provider.tpm,
      max_batch: provider.maxBatch,
      concurrency: provider.concurrency,
      timeout_ms: provider.timeoutMs,
      retries: provider.retries,
      breaker: { failures: provider.breaker.failures, cooldown_ms: provider.breaker.cooldownMs },
      backoff: { base_ms: provider.backoff.baseMs, max_ms: provider.backoff.maxMs },
      allowed: allowlist.length === 0 || allowlist.includes(provider.name),
    })),
    fallback_chain: config.fallbackChain,
    allowlist,
  };
}

type Fail = (field: string, why: string) => never;

function object(value: unknown, field: string, fail: Fail): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) fail(field, "must be a mapping");
  return value as Record<string, unknown>;
}

function string(value: unknown, field: string, fail: Fail): string {
  if (typeof value !== "string" || value === "") fail(field, "must be a non-empty string");
  return value as string;
}

function count(value: unknown, field: string, fail: Fail, fallback: number | undefined, min = 0): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) fail(field, `must be an integer >= ${min}`);
  return value as number;
}
