import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { createProviderGateway, type ProviderGateway } from "./create-provider-gateway.js";
import { loadProvidersFile, parseFallbackChain } from "./provider-config.js";

/** The serve settings of gateway mode (`SUTRA_PROVIDERS_FILE`, `EMBEDDINGS_FALLBACK_CHAIN`, `SUTRA_PROVIDER_ALLOWLIST`; docs/PROVIDERS.md). */
export interface ProviderSettings {
  /** `SUTRA_PROVIDERS_FILE`. */
  providersFile?: string;
  /** `EMBEDDINGS_FALLBACK_CHAIN`, comma-separated; replaces the file's `fallback_chain`. */
  fallbackChain?: string;
  /** `SUTRA_PROVIDER_ALLOWLIST`, comma-separated; empty = every configured provider. */
  providerAllowlist?: string;
}

/**
 * Builds the gateway from the serve settings, or returns undefined when no
 * providers file is set (local models only). Keys come from `env`. Throws an
 * Error naming the problem (never a key) for a bad file, a chain or allowlist
 * naming an unknown provider: a misconfigured gateway does not start.
 */
export function loadProviderGateway(
  settings: ProviderSettings,
  deps: { metrics: Metrics; logger: Logger; isLocalModel(name: string): boolean; env?: NodeJS.ProcessEnv },
): ProviderGateway | undefined {
  const list = (value: string | undefined) => (value ?? "").split(",").map((name) => name.trim()).filter(Boolean);
  if (settings.providersFile === undefined || settings.providersFile === "") {
    if (list(settings.fallbackChain).length > 0 || list(settings.providerAllowlist).length > 0) {
      deps.logger.warn("EMBEDDINGS_FALLBACK_CHAIN or SUTRA_PROVIDER_ALLOWLIST is set without SUTRA_PROVIDERS_FILE; ignored");
    }
    return undefined;
  }
  const config = loadProvidersFile(settings.providersFile, deps.env ?? process.env);
  const names = config.providers.map((provider) => provider.name);
  const allowlist = list(settings.providerAllowlist);
  const unknown = allowlist.find((name) => !names.includes(name) && name !== "local");
  if (unknown !== undefined) throw new Error(`SUTRA_PROVIDER_ALLOWLIST names "${unknown}", which is not a configured provider`);
  const fallbackChain = list(settings.fallbackChain).length > 0 ? parseFallbackChain(settings.fallbackChain ?? "", names) : undefined;
  const gateway = createProviderGateway({ config, fallbackChain, allowlist, isLocalModel: deps.isLocalModel, metrics: deps.metrics, logger: deps.logger });
  deps.logger.info(
    { providers: config.providers.map((provider) => `${provider.name} (${provider.type})`), fallbackChain: fallbackChain ?? config.fallbackChain, allowlist },
    "upstream providers configured",
  );
  return gateway;
}
