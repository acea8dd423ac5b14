import { EmbedderError } from "../domain/errors.js";
import { LOCAL_PROVIDER, type ProviderConfig } from "./provider-config.js";

/** Where a request goes: `local` (the server's own models, `model` as the registry resolves it) or an upstream provider and one of its models. */
export interface ProviderRoute {
  provider: string;
  model: string;
}

/** What routing looks at besides the request; fixed for the life of the gateway. */
export interface RoutingRules {
  /** The upstream providers (every configured provider but `local`), in the file's order. */
  upstream: readonly ProviderConfig[];
  /** Provider names in fallback order: a bare model name goes to the first of them that serves it. */
  fallbackChain: readonly string[];
  /** Providers requests may use (`SUTRA_PROVIDER_ALLOWLIST`); empty = all. */
  allowlist: readonly string[];
  /** Whether a bare model name is one the local registry knows (it then stays local). */
  isLocalModel(name: string): boolean;
}

/**
 * Whether requests may use provider `name`: `local` always, any provider when
 * the allowlist is empty, else the providers it lists. Routing and fallback
 * both ask it, so a provider off the list is neither chosen nor fallen back to.
 */
export function isProviderAllowed(name: string, allowlist: readonly string[]): boolean {
  return name === LOCAL_PROVIDER || allowlist.length === 0 || allowlist.includes(name);
}

/**
 * Where a request goes, from its model and `x-provider` header only (a pure
 * function of them and `rules`): `provider:model` or the header names a
 * provider (`local` = the server's models); a bare model name that no local
 * model has but an allowed provider serves goes to that provider (fallback
 * chain order first, then the file's order). A provider's route names one of
 * its models (its first for an empty model). Throws UNKNOWN_MODEL for an
 * unknown provider or a model the named provider does not serve, FORBIDDEN
 * for a provider off the allowlist, INVALID_ARGUMENT when the header and the
 * prefix disagree.
 */
export function routeRequest(request: { model: string; provider?: string }, rules: RoutingRules): ProviderRoute {
  const byName = new Map(rules.upstream.map((provider) => [provider.name, provider]));
  const header = request.provider?.trim() ?? "";
  let model = request.model;
  let prefix = "";
  const colon = model.indexOf(":");
  if (colon > 0) {
    const candidate = model.slice(0, colon);
    if (candidate === LOCAL_PROVIDER || byName.has(candidate)) {
      prefix = candidate;
      model = model.slice(colon + 1);
    }
  }
  if (header !== "" && prefix !== "" && header !== prefix) {
    throw new EmbedderError("INVALID_ARGUMENT", `the x-provider header names "${header}" but the model names provider "${prefix}"`, {
      details: { field: "model", provider: header },
    });
  }
  let provider = header || prefix;
  if (provider === "" && model !== "" && !rules.isLocalModel(model)) {
    const serving = [...rules.fallbackChain, ...byName.keys()].find((name) =>
      name !== LOCAL_PROVIDER && isProviderAllowed(name, rules.allowlist) && (byName.get(name)?.models ?? []).some((entry) => entry.id === model));
    if (serving !== undefined) provider = serving;
  }
  if (provider === "" || provider === LOCAL_PROVIDER) return { provider: LOCAL_PROVIDER, model };
  const config = byName.get(provider);
  if (config === undefined) {
    throw new EmbedderError("UNKNOWN_MODEL", `unknown provider "${provider}"`, {
      details: { provider, supported: [LOCAL_PROVIDER, ...byName.keys()] },
    });
  }
  if (!isProviderAllowed(provider, rules.allowlist)) {
    throw new EmbedderError("FORBIDDEN", `provider "${provider}" is not allowed on this server`, { details: { provider } });
  }
  const entry = model === "" ? config.models[0] : config.models.find((candidate) => candidate.id === model);
  if (entry === undefined) {
    throw new EmbedderError("UNKNOWN_MODEL", `provider "${provider}" serves no model "${model}"`, {
      details: { provider, model, supported: config.models.map((candidate) => candidate.id) },
    });
  }
  return { provider, model: entry.id };
}
