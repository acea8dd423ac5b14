import type { RetentionSweeper } from "./create-retention-sweeper.js";
import { fromStore } from "./from-store.js";
import type { JobDeps } from "./job-service-deps.js";
import { runJob } from "./run-job.js";

/** Runs queued jobs in the background, from start to stop. */
export interface JobScheduler {
  /** Requeues jobs a previous process left running, starts the retention sweeper, and starts running queued jobs (once). */
  start(): void;
  /** Stops the sweeper and running jobs (a batch in flight is dropped) and waits for them to let go; no job starts after. */
  stop(): Promise<void>;
  /** Starts queued jobs, oldest first, while fewer than `concurrency` run (none before start or after stop). */
  kick(): void;
  /** Stops the run of job `jobId`, if it runs here (its status is the caller's). */
  abort(jobId: string): void;
  /** Whether stop was called: new jobs are refused from then on. */
  isStopped(): boolean;
}

/**
 * Creates the scheduler of document jobs: at most `concurrency` (default 1)
 * run at once through runJob, each with its own AbortController; when one
 * ends, the next queued job starts. Stopped jobs stay `running` in the store,
 * so the next start requeues them and they resume from their last committed
 * chunk.
 */
export function createJobScheduler(deps: JobDeps, sweeper: RetentionSweeper): JobScheduler {
  const { store, logger, now } = deps;
  const concurrency = Math.max(1, deps.concurrency ?? 1);
  const running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  let started = false;
  let stopped = false;

  const kick = (): void => {
    if (!started || stopped) return;
    while (running.size < concurrency) {
      const job = fromStore(() => store.nextQueued(new Set(running.keys())));
      if (job === undefined) return;
      const controller = new AbortController();
      const done = runJob(deps, job, controller.signal)
        .catch((error: unknown) => logger.error({ err: error, job: job.id }, "document job stopped by an unexpected error"))
        .finally(() => {
          running.delete(job.id);
          kick();
        });
      running.set(job.id, { controller, done });
    }
  };

  return {
    start() {
      if (started) return;
      started = true;
      const requeued = fromStore(() => store.requeueRunning(now()));
      if (requeued.length > 0) logger.info({ jobs: requeued }, "document jobs left running by the previous process will resume");
      sweeper.start();
      kick();
    },
    async stop() {
      stopped = true;
      sweeper.stop();
      const runs = [...running.values()];
      for (const run of runs) run.controller.abort();
      await Promise.all(runs.map((run) => run.done));
    },
    kick,
    abort(jobId) {
      running.get(jobId)?.controller.abort();
    },
    isStopped: () => stopped,
  };
}
