import type { JobDeps } from "./job-service-deps.js";

/** Deletes expired jobs now and then, from start to stop. */
export interface RetentionSweeper {
  /** Deletes the jobs expired by now, then again every `sweepIntervalMs`. */
  start(): void;
  /** Stops the repeated deletion. */
  stop(): void;
}

/**
 * Creates the sweeper that deletes finished jobs whose retention ended
 * (docs/JOBS.md), with their documents and results, so the store does not
 * grow without end. It runs every `sweepIntervalMs` (default: a tenth of the
 * retention, between 1 s and 10 min) on a timer that does not keep the
 * process alive; a failed sweep is logged and tried again at the next one.
 */
export function createRetentionSweeper(deps: Pick<JobDeps, "store" | "logger" | "limits" | "sweepIntervalMs" | "now">): RetentionSweeper {
  const { store, logger, limits, now } = deps;
  let timer: NodeJS.Timeout | undefined;

  const sweep = (): void => {
    try {
      const deleted = store.deleteExpired(now());
      if (deleted > 0) logger.info({ deleted }, "expired document jobs deleted");
    } catch (error) {
      logger.error({ err: error }, "could not delete expired document jobs");
    }
  };

  return {
    start() {
      sweep();
      const interval = deps.sweepIntervalMs ?? Math.min(600_000, Math.max(1_000, limits.retentionMs / 10));
      timer = setInterval(sweep, interval).unref();
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
    },
  };
}
