import { embeddingCacheKey, type CachedEmbedding, type EmbeddingCache, type EmbeddingCacheKey } from "../cache/embedding-cache.js";
import type { Encoding } from "../tokenize/index.js";

/** A request's texts as the cache knows them: a key per text (when the cache is on) and the entries it held. */
export interface CachedInputs {
  /** Per input; absent when the cache is off. */
  keys?: string[];
  /** Per input: its entry, or undefined for a miss (empty when the cache is off). */
  hits: Array<CachedEmbedding | undefined>;
}

/**
 * Looks every prepared text up in the cache under everything that changes
 * its vector (`key` plus the text). A server without a cache looks nothing up.
 */
export function lookUpInputs(
  cache: EmbeddingCache | undefined,
  key: Omit<EmbeddingCacheKey, "text">,
  prepared: string[],
): CachedInputs {
  if (cache === undefined) return { hits: [] };
  const keys = prepared.map((text) => embeddingCacheKey({ ...key, text }));
  return { keys, hits: keys.map((cacheKey) => cache.get(cacheKey)) };
}

/** The encodings of every input in input order: a hit's token facts where the cache held it, else the next fresh encoding. */
export function mergeEncodings(hits: CachedInputs["hits"], fresh: Encoding[]): Encoding[] {
  if (hits.length === 0) return fresh;
  let next = 0;
  return hits.map((hit) => hit === undefined
    ? fresh[next++]
    : { ids: new Int32Array(hit.tokens), truncated: hit.truncated, fullLength: hit.tokens });
}

/** Every input's result in input order: from its cache hit, or the next computed one. */
export function mergeResults<T>(hits: CachedInputs["hits"], computed: T[], fromCache: (hit: CachedEmbedding) => T): T[] {
  if (hits.length === 0) return computed;
  let next = 0;
  return hits.map((hit) => (hit ? fromCache(hit) : computed[next++]));
}
