/** How long one reading of the resident set size is reused, in milliseconds. */
const READING_TTL_MS = 1000;

let readAt = Number.NEGATIVE_INFINITY;
let residentMb = 0;

/**
 * The process's resident set size in MiB, read at most once a second: answers
 * report it on every call, and reading it asks the kernel each time.
 */
export function residentMemoryMb(): number {
  const now = performance.now();
  if (now - readAt >= READING_TTL_MS) {
    readAt = now;
    residentMb = process.memoryUsage.rss() / (1024 * 1024);
  }
  return residentMb;
}
