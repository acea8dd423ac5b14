import { EmbedderError } from "../domain/errors.js";
import type { ProviderBreakerView, ProviderCatalog } from "../providers/create-provider-gateway.js";
import type { HttpRoute } from "./create-http-handler.js";
import { sendJson } from "./node-types.js";

/**
 * What the provider admin routes (and the seed's model list and health) read
 * and change: the gateway, or nothing when no providers are configured.
 */
export interface ProviderAdmin {
  breakers(): ProviderBreakerView[];
  resetBreaker(provider: string): ProviderBreakerView;
  describeConfig(): Record<string, unknown>;
  catalog(): ProviderCatalog;
}

/**
 * The gateway's admin routes of the seed API (docs/PROVIDERS.md; also under
 * `/api/v1`), all for the `admin` role:
 * - `GET /v1/embeddings/circuit-breakers` -> {circuit_breakers: [{provider, state
 *   (closed|open|half_open), consecutive_failures, failure_threshold, cooldown_ms,
 *   opened_at, retry_in_ms, opened_total}], count};
 * - `POST /v1/embeddings/circuit-breakers/{provider}/reset` closes one breaker ->
 *   that provider's entry (UNKNOWN_MODEL for an unknown provider);
 * - `GET /v1/embeddings/providers-config` -> the providers file as loaded, with
 *   defaults, the fallback chain and the allowlist; keys redacted (only the env
 *   var's name shows).
 * Without a providers file they answer empty lists.
 */
export function createProviderRoutes(admin: ProviderAdmin | undefined): HttpRoute[] {
  return [
    {
      method: "GET",
      path: "/v1/embeddings/circuit-breakers",
      access: "admin",
      async handle({ response }) {
        const breakers = (admin?.breakers() ?? []).map(breakerJson);
        sendJson(response, 200, {}, { circuit_breakers: breakers, count: breakers.length });
      },
    },
    {
      method: "POST",
      path: "/v1/embeddings/circuit-breakers/{provider}/reset",
      access: "admin",
      async handle({ response, variables }) {
        const provider = variables.provider;
        if (admin === undefined) {
          throw new EmbedderError("UNKNOWN_MODEL", `unknown provider "${provider}" (no providers are configured)`, { details: { provider } });
        }
        sendJson(response, 200, {}, breakerJson(admin.resetBreaker(provider)));
      },
    },
    {
      method: "GET",
      path: "/v1/embeddings/providers-config",
      access: "admin",
      async handle({ response }) {
        sendJson(response, 200, {}, admin?.describeConfig() ?? { providers: [], fallback_chain: [], allowlist: [] });
      },
    },
  ];
}

function breakerJson(view: ProviderBreakerView): Record<string, unknown> {
  return {
    provider: view.provider,
    state: view.state,
    consecutive_failures: view.consecutiveFailures,
    failure_threshold: view.failureThreshold,
    cooldown_ms: view.cooldownMs,
    opened_at: view.openedAt === null ? null : new Date(view.openedAt).toISOString(),
    retry_in_ms: view.retryInMs,
    opened_total: view.opened,
  };
}
