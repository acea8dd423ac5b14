import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { SignJWT } from "jose";

/** A 32-byte HS256 secret for tests. */
export const TEST_JWT_SECRET = "test-secret-0123456789abcdef0123456789";

/** Signs an HS256 token for tests; `claims` may override anything, e.g. `exp`. */
export async function signHs256(claims: Record<string, unknown>, secret = TEST_JWT_SECRET): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: "alice", exp: now + 300, iat: now, ...claims })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(secret));
}

/** Signs a token with an asymmetric private key. */
export async function signWith(key: KeyObject, alg: string, claims: Record<string, unknown>): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: "alice", exp: now + 300, iat: now, ...claims }).setProtectedHeader({ alg, typ: "JWT" }).sign(key);
}

/** An unsecured token (`alg: none`), which no server must accept. */
export function unsecuredToken(claims: Record<string, unknown>): string {
  const now = Math.floor(Date.now() / 1000);
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${encode({ alg: "none", typ: "JWT" })}.${encode({ sub: "alice", exp: now + 300, role: "admin", ...claims })}.`;
}

/** A fresh RSA key pair with the public key as SPKI PEM. */
export function rsaKeyPair(): { privateKey: KeyObject; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { privateKey, publicPem: publicKey.export({ type: "spki", format: "pem" }).toString() };
}

/** A fresh P-256 key pair with the public key as SPKI PEM. */
export function ecKeyPair(): { privateKey: KeyObject; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { privateKey, publicPem: publicKey.export({ type: "spki", format: "pem" }).toString() };
}
