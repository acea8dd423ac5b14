import { createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { errors as joseErrors, jwtVerify, type JWTPayload } from "jose";
import { EmbedderError } from "../domain/errors.js";
import type { Principal, Role } from "../domain/types.js";
import { findApiKey, parseApiKeys, type ApiKeyEntry } from "./api-keys.js";

/** Authentication modes (`SUTRA_AUTH_MODE`; docs/AUTH.md). */
export const AUTH_MODES = ["none", "api-key", "jwt"] as const;

/** An authentication mode. */
export type AuthMode = (typeof AUTH_MODES)[number];

/** Authentication settings, as `sutra serve` reads them (flags and env names in docs/AUTH.md). */
export interface AuthSettings {
  mode: AuthMode;
  /** `SUTRA_API_KEYS`: comma-separated `key` or `key:role`. */
  apiKeys?: string;
  /** `SUTRA_API_KEYS_FILE`: the same items, one or more per line, `#` comments. */
  apiKeysFile?: string;
  /** `SUTRA_JWT_SECRET`: HS256 shared secret, at least 32 bytes. */
  jwtSecret?: string;
  /** `SUTRA_JWT_PUBLIC_KEY`: an SPKI PEM public key (RSA, EC or Ed25519), or the path of a file holding one. */
  jwtPublicKey?: string;
  /** `SUTRA_JWT_ISSUER`: when set, the `iss` claim must equal it. */
  jwtIssuer?: string;
  /** `SUTRA_JWT_AUDIENCE`: when set, the `aud` claim must contain it. */
  jwtAudience?: string;
}

/** Request headers from either Node's HTTP servers or the Fetch API (Connect interceptors). */
export type HeaderSource = Headers | IncomingHttpHeaders;

/**
 * Says who sent a request. `authenticate` is the one check every transport
 * calls (the Connect interceptor, the HTTP routes, WebSocket upgrades): it
 * resolves to the principal or rejects with UNAUTHENTICATED.
 */
export interface Authenticator {
  readonly mode: AuthMode;
  authenticate(headers: HeaderSource): Promise<Principal>;
}

/** The caller when authentication is off: one shared principal that may do everything. */
export const ANONYMOUS: Principal = Object.freeze({ id: "anonymous", role: "admin", method: "none" });

/** Shortest HS256 secret accepted: RFC 7518 section 3.2 wants a key at least as long as the hash. */
const MIN_SECRET_BYTES = 32;
/** Clock skew tolerated on `exp` and `nbf`, in seconds. */
const CLOCK_TOLERANCE_S = 5;
/** Verified tokens remembered, so a client reusing its token pays for one signature check, not one per request. */
const VERIFIED_TOKENS_MAX = 10_000;
/** Longest a verified token is remembered (it is also never remembered past its `exp`). */
const VERIFIED_TOKEN_TTL_MS = 5 * 60_000;

/**
 * Creates the authenticator of a mode, checking its settings at start-up
 * (throws a plain Error naming the setting, so `sutra serve` refuses to start
 * on a bad configuration rather than serving open):
 * - `none`: everyone is ANONYMOUS.
 * - `api-key`: a key from `X-API-Key` or `Authorization: Bearer`, compared in
 *   constant time against SHA-256 digests of the configured keys.
 * - `jwt`: `Authorization: Bearer <jwt>` verified with jose: HS256 with a
 *   secret, or RS/PS/ES/EdDSA with a public key, the algorithm allowlist
 *   derived from the key (so `alg: none` and HMAC-with-the-public-key tokens
 *   fail); `exp` and `sub` are required, `exp`/`nbf` checked with 5 s of skew,
 *   `iss`/`aud` when configured. A verified token is remembered (by its exact
 *   text, at most 5 minutes and never past its `exp`), so reusing it costs a
 *   map look-up rather than a signature check. `sub` must be a non-empty string (it is
 *   the principal id); the role is `admin` when the `role` claim is "admin" or the
 *   `roles` claim lists it, else `user`; a `role` that is not a string, or `roles` that
 *   is not a list of strings, refuses the token.
 */
export function createAuthenticator(settings: AuthSettings): Authenticator {
  switch (settings.mode) {
    case "none":
      return { mode: "none", authenticate: async () => ANONYMOUS };
    case "api-key":
      return createApiKeyAuthenticator(loadApiKeys(settings));
    case "jwt":
      return createJwtAuthenticator(settings);
    default:
      throw new Error(`unknown auth mode "${String(settings.mode)}" (expected one of ${AUTH_MODES.join(", ")})`);
  }
}

function loadApiKeys(settings: AuthSettings): ApiKeyEntry[] {
  const entries = [
    ...parseApiKeys(settings.apiKeys ?? ""),
    ...(settings.apiKeysFile ? parseApiKeys(readFileSync(settings.apiKeysFile, "utf8")) : []),
  ];
  if (entries.length === 0) throw new Error("auth mode api-key needs at least one key (SUTRA_API_KEYS or SUTRA_API_KEYS_FILE)");
  return entries;
}

function unauthenticated(message: string, details: Record<string, string> = {}): EmbedderError {
  return new EmbedderError("UNAUTHENTICATED", message, { details });
}

function headerValue(headers: HeaderSource, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function bearerToken(headers: HeaderSource): string | undefined {
  const authorization = headerValue(headers, "authorization");
  if (authorization === undefined) return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
  if (match === null) throw unauthenticated("the Authorization header must be \"Bearer <credential>\"");
  return match[1];
}

function createApiKeyAuthenticator(entries: ApiKeyEntry[]): Authenticator {
  return {
    mode: "api-key",
    async authenticate(headers) {
      const presented = headerValue(headers, "x-api-key")?.trim() || bearerToken(headers);
      if (presented === undefined || presented === "") {
        throw unauthenticated("an API key is required (X-API-Key or Authorization: Bearer)");
      }
      const entry = findApiKey(entries, presented);
      if (entry === undefined) throw unauthenticated("the API key is not valid");
      return { id: entry.id, role: entry.role, method: "api-key" };
    },
  };
}

/** The verification key and the algorithms it may be used with. */
function jwtKey(settings: AuthSettings): { key: Uint8Array | KeyObject; algorithms: string[] } {
  if (settings.jwtSecret && settings.jwtPublicKey) {
    throw new Error("set either SUTRA_JWT_SECRET or SUTRA_JWT_PUBLIC_KEY, not both");
  }
  if (settings.jwtSecret) {
    const secret = new TextEncoder().encode(settings.jwtSecret);
    if (secret.byteLength < MIN_SECRET_BYTES) throw new Error(`SUTRA_JWT_SECRET must be at least ${MIN_SECRET_BYTES} bytes`);
    return { key: secret, algorithms: ["HS256"] };
  }
  if (settings.jwtPublicKey) {
    const pem = settings.jwtPublicKey.includes("-----BEGIN") ? settings.jwtPublicKey : readFileSync(settings.jwtPublicKey, "utf8");
    const key = createPublicKey(pem);
    return { key, algorithms: algorithmsOf(key) };
  }
  throw new Error("auth mode jwt needs SUTRA_JWT_SECRET or SUTRA_JWT_PUBLIC_KEY");
}

function algorithmsOf(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case "rsa":
      return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
    case "rsa-pss":
      return ["PS256", "PS384", "PS512"];
    case "ec": {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const algorithm = { prime256v1: "ES256", secp384r1: "ES384", secp521r1: "ES512" }[curve ?? ""];
      if (algorithm === undefined) throw new Error(`SUTRA_JWT_PUBLIC_KEY: unsupported EC curve ${curve}`);
      return [algorithm];
    }
    case "ed25519":
      return ["EdDSA", "Ed25519"];
    default:
      throw new Error(`SUTRA_JWT_PUBLIC_KEY: unsupported key type ${key.asymmetricKeyType}`);
  }
}

function createJwtAuthenticator(settings: AuthSettings): Authenticator {
  const { key, algorithms } = jwtKey(settings);
  const options = {
    algorithms,
    issuer: settings.jwtIssuer || undefined,
    audience: settings.jwtAudience || undefined,
    requiredClaims: ["exp", "sub"],
    clockTolerance: CLOCK_TOLERANCE_S,
  };
  // Only tokens that passed verification are kept, under their exact text, until the earlier of their `exp` and the TTL.
  const verified = new Map<string, { principal: Principal; until: number }>();
  return {
    mode: "jwt",
    async authenticate(headers) {
      const token = bearerToken(headers);
      if (token === undefined) throw unauthenticated("a bearer token is required (Authorization: Bearer <jwt>)");
      const known = verified.get(token);
      if (known !== undefined && Date.now() < known.until) return known.principal;
      verified.delete(token);
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key, options));
      } catch (error) {
        throw new EmbedderError("UNAUTHENTICATED", describeJwtFailure(error), { cause: error });
      }
      const principal: Principal = { id: subjectOf(payload), role: roleOf(payload), method: "jwt" };
      if (verified.size >= VERIFIED_TOKENS_MAX) verified.delete(verified.keys().next().value as string);
      verified.set(token, { principal, until: Math.min((payload.exp ?? 0) * 1000, Date.now() + VERIFIED_TOKEN_TTL_MS) });
      return principal;
    },
  };
}

/**
 * The principal id of a verified token: its `sub`, which must be a non-empty
 * string. Anything else is refused rather than turned into a string, since
 * `String({...})` gives every such token the same id ("[object Object]"), and
 * so the same jobs and rate limits.
 */
function subjectOf(payload: JWTPayload): string {
  const subject: unknown = payload.sub;
  if (typeof subject !== "string" || subject === "") throw unauthenticated('the token\'s "sub" claim must be a non-empty string');
  return subject;
}

/**
 * The role of a verified token: `admin` when the `role` claim is "admin" or the
 * `roles` claim lists it, else `user`. A `role` that is not a string, or
 * `roles` that is not a list of strings, refuses the token (never coerced).
 */
function roleOf(payload: JWTPayload): Role {
  const { role, roles } = payload;
  if (role !== undefined && typeof role !== "string") throw unauthenticated('the token\'s "role" claim must be a string');
  if (roles !== undefined && !(Array.isArray(roles) && roles.every((item) => typeof item === "string"))) {
    throw unauthenticated('the token\'s "roles" claim must be a list of strings');
  }
  return role === "admin" || (roles as string[] | undefined)?.includes("admin") ? "admin" : "user";
}

/** A client-safe reason a token was refused (jose's own messages may quote claim values). */
function describeJwtFailure(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return "the token has expired";
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `the token's "${error.claim}" claim is not valid`;
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return "the token's algorithm is not allowed";
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "the token's signature is not valid";
  return "the token is not valid";
}
