/**
 * Delay before retry number `retry` (0 for the first retry): `baseMs * 2^retry`
 * capped at `maxMs` (1, 2, 4, 8, 16 s with the defaults), with "equal jitter":
 * a random point in the upper half of that, so clients that failed together
 * do not come back together, and no wait exceeds the nominal one.
 */
export function backoffDelayMs(retry: number, backoff: { baseMs: number; maxMs: number }, random: () => number = Math.random): number {
  const nominal = Math.min(backoff.maxMs, backoff.baseMs * 2 ** retry);
  return Math.round(nominal / 2 + (random() * nominal) / 2);
}

/**
 * How long an upstream asked us to wait, in ms: `retry-after-ms` (OpenAI's
 * header) first, then `Retry-After` as delta-seconds or an HTTP date.
 * Undefined when neither is there or parses.
 */
export function retryAfterMs(headers: Headers, now: number = Date.now()): number | undefined {
  const precise = headers.get("retry-after-ms");
  if (precise !== null && /^\d+(\.\d+)?$/.test(precise.trim())) return Math.ceil(Number(precise));
  const value = headers.get("retry-after");
  if (value === null) return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
