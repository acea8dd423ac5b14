import { createHash } from "node:crypto";

/** What the cache keeps per text: the pooled vector before dimensions and normalisation, and its token facts. */
export interface CachedEmbedding {
  vector: Float32Array;
  tokens: number;
  truncated: boolean;
  executionProvider: string;
}

/** Everything that changes a text's vector; two requests share an entry only when all of it is equal. */
export interface EmbeddingCacheKey {
  modelId: string;
  /** The weight file that ran and its content hash (a replaced model never serves stale vectors). */
  modelFile: string;
  modelFileSha256: string;
  precision: string;
  executionProviders: string[];
  dimensions: number;
  normalize: boolean;
  truncate: string;
  /** The text after the prompt or instruction was applied. */
  text: string;
}

/** Counters for health. */
export interface EmbeddingCacheStats {
  size: number;
  maxSize: number;
  ttlSeconds: number;
  hits: number;
  misses: number;
}

/** An LRU + TTL cache of embeddings, bounded by entry count. */
export interface EmbeddingCache {
  get(key: string): CachedEmbedding | undefined;
  set(key: string, value: CachedEmbedding): void;
  stats(): EmbeddingCacheStats;
  clear(): void;
}

/** Options of {@link createEmbeddingCache}. */
export interface EmbeddingCacheOptions {
  /** Most entries; the least recently used goes first. */
  maxEntries: number;
  /** Entry lifetime in seconds; 0 = no expiry. */
  ttlSeconds: number;
  /** Clock in ms (tests). */
  now?: () => number;
}

/**
 * The cache key of one text: a sha256 over every field of {@link EmbeddingCacheKey}, each
 * length-prefixed so no two different keys can run together into the same bytes.
 */
export function embeddingCacheKey(key: EmbeddingCacheKey): string {
  const hash = createHash("sha256");
  const fields = [
    key.modelId, key.modelFile, key.modelFileSha256, key.precision, key.executionProviders.join(","),
    String(key.dimensions), key.normalize ? "1" : "0", key.truncate, key.text,
  ];
  for (const field of fields) {
    const bytes = Buffer.from(field, "utf8");
    hash.update(`${bytes.length}:`);
    hash.update(bytes);
  }
  return hash.digest("base64");
}

/**
 * Creates the embedding cache (hits skip tokenization and inference; docs/MODELS.md). A Map keeps insertion
 * order, so re-inserting on a hit makes it the most recent and the first key is the least
 * recent. Stored vectors are copies, and `get` hands back the stored object: callers copy
 * before changing it.
 */
export function createEmbeddingCache(options: EmbeddingCacheOptions): EmbeddingCache {
  const now = options.now ?? Date.now;
  const ttlMs = options.ttlSeconds * 1000;
  const entries = new Map<string, { value: CachedEmbedding; expiresAt: number }>();
  let hits = 0;
  let misses = 0;
  return {
    get(key) {
      const entry = entries.get(key);
      if (entry === undefined || (ttlMs > 0 && entry.expiresAt <= now())) {
        if (entry) entries.delete(key);
        misses++;
        return undefined;
      }
      entries.delete(key);
      entries.set(key, entry);
      hits++;
      return entry.value;
    },
    set(key, value) {
      if (options.maxEntries <= 0) return;
      entries.delete(key);
      entries.set(key, { value: { ...value, vector: new Float32Array(value.vector) }, expiresAt: ttlMs > 0 ? now() + ttlMs : Infinity });
      while (entries.size > options.maxEntries) entries.delete(entries.keys().next().value as string);
    },
    stats: () => ({ size: entries.size, maxSize: options.maxEntries, ttlSeconds: options.ttlSeconds, hits, misses }),
    clear() {
      entries.clear();
    },
  };
}
