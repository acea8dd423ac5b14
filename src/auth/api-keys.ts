import { createHash, timingSafeEqual } from "node:crypto";
import type { Role } from "../domain/types.js";

/** One configured API key, held only as its SHA-256 digest. */
export interface ApiKeyEntry {
  digest: Buffer;
  role: Role;
  /** Safe to log and to key rate limits: `key-` and the first 12 hex digits of the digest. */
  id: string;
}

const ROLES: readonly Role[] = ["user", "admin"];

/**
 * Parses API keys as `SUTRA_API_KEYS` and `SUTRA_API_KEYS_FILE` hold them: items
 * `key` or `key:role` (role `user` or `admin`, default `user`), separated by
 * commas or newlines; blank items and lines starting with `#` are skipped. A
 * suffix after the last `:` that is not a role stays part of the key, so keys
 * may contain colons. Keys are kept as SHA-256 digests only.
 */
export function parseApiKeys(text: string): ApiKeyEntry[] {
  const entries: ApiKeyEntry[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim().startsWith("#")) continue;
    for (const item of line.split(",")) {
      const trimmed = item.trim();
      if (trimmed === "") continue;
      const colon = trimmed.lastIndexOf(":");
      const suffix = colon === -1 ? "" : trimmed.slice(colon + 1);
      const hasRole = (ROLES as readonly string[]).includes(suffix);
      const key = hasRole ? trimmed.slice(0, colon) : trimmed;
      if (key === "") throw new Error(`an API key entry has a role but no key ("${suffix}")`);
      const digest = digestOf(key);
      entries.push({ digest, role: hasRole ? (suffix as Role) : "user", id: `key-${digest.toString("hex").slice(0, 12)}` });
    }
  }
  return entries;
}

function digestOf(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

/**
 * Finds the entry of a presented key in constant time with respect to the keys:
 * the presented key is hashed (so its length leaks nothing) and compared with
 * every configured digest by `timingSafeEqual`, without stopping at a match.
 */
export function findApiKey(entries: readonly ApiKeyEntry[], presented: string): ApiKeyEntry | undefined {
  const digest = digestOf(presented);
  let found: ApiKeyEntry | undefined;
  for (const entry of entries) {
    if (timingSafeEqual(entry.digest, digest) && found === undefined) found = entry;
  }
  return found;
}
