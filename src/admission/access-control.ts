import type { Authenticator, HeaderSource } from "../auth/create-authenticator.js";
import { EmbedderError } from "../domain/errors.js";
import type { Principal } from "../domain/types.js";
import type { Metrics } from "../observability/metrics.js";
import type { RateLimiter } from "./rate-limit.js";

/** Who may call a route or rpc: anyone, an authenticated caller, or one with the `admin` role. */
export type AccessLevel = "open" | "user" | "admin";

/**
 * The admission check every transport runs before reading a request body:
 * authentication, the role a route needs, and the caller's request rate.
 */
export interface AccessControl {
  readonly authenticator: Authenticator;
  /**
   * Admits a request that needs `level`: resolves to the caller (undefined for
   * `open`, which authenticates no one and is not rate limited) or rejects with
   * UNAUTHENTICATED, FORBIDDEN or RATE_LIMITED.
   */
  admit(headers: HeaderSource, level: AccessLevel): Promise<Principal | undefined>;
}

/** What the access check needs. */
export interface AccessControlDeps {
  authenticator: Authenticator;
  rateLimiter: RateLimiter;
  metrics?: Metrics;
}

/**
 * Creates the access check. Rate-limit refusals are counted in
 * `sutra_rate_limited_total` by limit; the transports count every refusal in
 * `sutra_failures_total` where they answer it.
 */
export function createAccessControl(deps: AccessControlDeps): AccessControl {
  const { authenticator, rateLimiter, metrics } = deps;
  const admitted = async (headers: HeaderSource, level: AccessLevel): Promise<Principal | undefined> => {
    if (level === "open") return undefined;
    const principal = await authenticator.authenticate(headers);
    if (level === "admin" && principal.role !== "admin") {
      throw new EmbedderError("FORBIDDEN", "this route needs the admin role", { details: { role: principal.role, required: "admin" } });
    }
    if (rateLimiter.enabled) rateLimiter.admit(principal.id);
    return principal;
  };
  return {
    authenticator,
    async admit(headers, level) {
      try {
        return await admitted(headers, level);
      } catch (error) {
        if (error instanceof EmbedderError && error.reason === "RATE_LIMITED") {
          metrics?.rateLimitedTotal.inc({ limit: String(error.details.limit) });
        }
        throw error;
      }
    },
  };
}
