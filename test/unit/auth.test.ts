import { createHmac } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { findApiKey, parseApiKeys } from "../../src/auth/api-keys.js";
import { ANONYMOUS, createAuthenticator } from "../../src/auth/create-authenticator.js";
import { EmbedderError } from "../../src/domain/errors.js";
import { ecKeyPair, rsaKeyPair, signHs256, signWith, TEST_JWT_SECRET, unsecuredToken } from "../support/jwt.js";

async function refusal(promise: Promise<unknown>): Promise<EmbedderError> {
  const error = await promise.then(() => undefined, (reason: unknown) => reason);
  expect(error).toBeInstanceOf(EmbedderError);
  expect((error as EmbedderError).reason).toBe("UNAUTHENTICATED");
  return error as EmbedderError;
}

describe("API keys", () => {
  it("parses key and key:role items from commas and lines, keeping colons that are not roles", () => {
    const entries = parseApiKeys("k1, k2:admin\n# a comment, not:admin\nurl:like:key\n\nk3:user");
    expect(entries.map((entry) => entry.role)).toEqual(["user", "admin", "user", "user"]);
    expect(findApiKey(entries, "k2")?.role).toBe("admin");
    expect(findApiKey(entries, "url:like:key")).toBeDefined();
    expect(findApiKey(entries, "not")).toBeUndefined();
    expect(findApiKey(entries, "k2:admin")).toBeUndefined();
    expect(entries[0].id).toMatch(/^key-[0-9a-f]{12}$/);
    expect(JSON.stringify(entries.map((entry) => entry.id))).not.toContain("k1");
  });

  it("authenticates X-API-Key and Bearer, from env and file; refuses missing, wrong and malformed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sutra-keys-"));
    writeFileSync(join(dir, "keys"), "# keys\nfile-key:admin\n");
    const auth = createAuthenticator({ mode: "api-key", apiKeys: "env-key", apiKeysFile: join(dir, "keys") });
    expect(await auth.authenticate({ "x-api-key": "env-key" })).toMatchObject({ role: "user", method: "api-key" });
    expect(await auth.authenticate(new Headers({ authorization: "Bearer file-key" }))).toMatchObject({ role: "admin" });
    expect(await auth.authenticate(new Headers({ "X-API-KEY": "file-key" }))).toMatchObject({ role: "admin" });
    await refusal(auth.authenticate({}));
    expect((await refusal(auth.authenticate({ "x-api-key": "env-kez" }))).message).toBe("the API key is not valid");
    await refusal(auth.authenticate({ authorization: "Basic ZW52LWtleTo=" }));
  });

  it("refuses to start without keys", () => {
    expect(() => createAuthenticator({ mode: "api-key", apiKeys: " , " })).toThrow(/at least one key/);
  });
});

describe("JWT", () => {
  const hs = () => createAuthenticator({ mode: "jwt", jwtSecret: TEST_JWT_SECRET, jwtIssuer: "issuer-1", jwtAudience: "sutra" });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const good = { iss: "issuer-1", aud: "sutra" };

  it("accepts a valid HS256 token and reads the role", async () => {
    expect(await hs().authenticate(bearer(await signHs256(good)))).toEqual({ id: "alice", role: "user", method: "jwt" });
    expect((await hs().authenticate(bearer(await signHs256({ ...good, role: "admin" })))).role).toBe("admin");
    expect((await hs().authenticate(bearer(await signHs256({ ...good, roles: ["user", "admin"] })))).role).toBe("admin");
  });

  it.each([
    ["expired", { exp: Math.floor(Date.now() / 1000) - 60 }, "the token has expired"],
    ["not yet valid", { nbf: Math.floor(Date.now() / 1000) + 600 }, 'the token\'s "nbf" claim is not valid'],
    ["wrong issuer", { iss: "someone-else" }, 'the token\'s "iss" claim is not valid'],
    ["wrong audience", { aud: "other" }, 'the token\'s "aud" claim is not valid'],
    ["no exp", { exp: undefined }, 'the token\'s "exp" claim is not valid'],
  ])("refuses a token that is %s", async (_name, claims, message) => {
    const error = await refusal(hs().authenticate(bearer(await signHs256({ ...good, ...claims }))));
    expect(error.message).toBe(message);
  });

  it("refuses a wrong signature, alg none, garbage and a missing token", async () => {
    const forged = await signHs256({ ...good, role: "admin" }, "another-secret-0123456789abcdef0123");
    expect((await refusal(hs().authenticate(bearer(forged)))).message).toBe("the token's signature is not valid");
    expect((await refusal(hs().authenticate(bearer(unsecuredToken(good))))).message).toBe("the token's algorithm is not allowed");
    await refusal(hs().authenticate(bearer("not.a.jwt")));
    await refusal(hs().authenticate({}));
  });

  it("verifies RS256 and ES256 with a public key and refuses HS256 signed with that public key", async () => {
    const rsa = rsaKeyPair();
    const auth = createAuthenticator({ mode: "jwt", jwtPublicKey: rsa.publicPem });
    expect((await auth.authenticate(bearer(await signWith(rsa.privateKey, "RS256", { role: "admin" })))).role).toBe("admin");
    // Algorithm confusion: an attacker signs with HMAC using the (public) PEM as the secret.
    const header = Buffer.from(JSON.stringify({ alg: "HS256", typ: "JWT" })).toString("base64url");
    const payload = Buffer.from(JSON.stringify({ sub: "mallory", exp: Math.floor(Date.now() / 1000) + 60, role: "admin" })).toString("base64url");
    const signature = createHmac("sha256", rsa.publicPem).update(`${header}.${payload}`).digest("base64url");
    expect((await refusal(auth.authenticate(bearer(`${header}.${payload}.${signature}`)))).message).toBe("the token's algorithm is not allowed");

    const ec = ecKeyPair();
    const ecAuth = createAuthenticator({ mode: "jwt", jwtPublicKey: ec.publicPem });
    expect((await ecAuth.authenticate(bearer(await signWith(ec.privateKey, "ES256", {})))).id).toBe("alice");
    await refusal(ecAuth.authenticate(bearer(await signWith(rsa.privateKey, "RS256", {}))));
  });

  it("refuses to start on a short secret, both keys, or neither", () => {
    expect(() => createAuthenticator({ mode: "jwt", jwtSecret: "short" })).toThrow(/at least 32 bytes/);
    expect(() => createAuthenticator({ mode: "jwt", jwtSecret: TEST_JWT_SECRET, jwtPublicKey: rsaKeyPair().publicPem })).toThrow(/not both/);
    expect(() => createAuthenticator({ mode: "jwt" })).toThrow(/SUTRA_JWT_SECRET or SUTRA_JWT_PUBLIC_KEY/);
  });
});

describe("auth mode none", () => {
  it("admits everyone as the anonymous admin", async () => {
    expect(await createAuthenticator({ mode: "none" }).authenticate({})).toBe(ANONYMOUS);
  });
});

describe("JWT verification cache", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("answers a reused token from the cache, but never past the token's exp", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const auth = createAuthenticator({ mode: "jwt", jwtSecret: TEST_JWT_SECRET });
    const token = await signHs256({ exp: Math.floor(Date.now() / 1000) + 60 });
    const first = await auth.authenticate({ authorization: `Bearer ${token}` });
    expect(await auth.authenticate({ authorization: `Bearer ${token}` })).toBe(first);
    vi.setSystemTime(Date.now() + 120_000);
    expect((await refusal(auth.authenticate({ authorization: `Bearer ${token}` }))).message).toBe("the token has expired");
  });
});
