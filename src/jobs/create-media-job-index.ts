import type { Principal } from "../domain/types.js";
import { ownerOf } from "./visible-job.js";

/** Media items the index remembers before it forgets the least recently started one. */
export const MEDIA_INDEX_CAPACITY = 10_000;

/**
 * Which document job embeds a media item of the seed Embeddings API: a
 * caller's `media_id` -> the job that embedded it last. Held in memory and
 * bounded (`capacity` entries, the least recently started dropped first), so
 * after a restart or an eviction the media's status is unknown while its job
 * (and `GET /v1/jobs/{job_id}`) lives on until it expires. Keys are per
 * owner (as jobs are): one caller's media id never finds another's job.
 */
export interface MediaJobIndex {
  /** Records that `jobId` now embeds the caller's `mediaId`, replacing an earlier job. */
  remember(principal: Principal | undefined, mediaId: string, jobId: string): void;
  /** The job last started for the caller's `mediaId`, or undefined. */
  find(principal: Principal | undefined, mediaId: string): string | undefined;
}

/** Creates an empty media index holding at most `capacity` media items. */
export function createMediaJobIndex(capacity = MEDIA_INDEX_CAPACITY): MediaJobIndex {
  const jobs = new Map<string, string>();
  const keyOf = (principal: Principal | undefined, mediaId: string) => `${ownerOf(principal)}\u0000${mediaId}`;
  return {
    remember(principal, mediaId, jobId) {
      const key = keyOf(principal, mediaId);
      jobs.delete(key);
      jobs.set(key, jobId);
      if (jobs.size > capacity) jobs.delete(jobs.keys().next().value as string);
    },
    find: (principal, mediaId) => jobs.get(keyOf(principal, mediaId)),
  };
}
