import type Database from "better-sqlite3";
import type { JobStore } from "../job-store.js";
import type { StoreGuard } from "./to-job-store-error.js";

/**
 * The job store's `deleteExpired` (its contract is JobStore's), run inside
 * `guard`: the expired jobs go with their chunks and documents in one
 * transaction, so a sweep that fails leaves no job without its rows.
 */
export function createJobSweep(db: Database.Database, guard: StoreGuard): Pick<JobStore, "deleteExpired"> {
  const statements = {
    expired: db.prepare<[number], { id: string }>("SELECT id FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ?"),
    deleteChunks: db.prepare("DELETE FROM chunks WHERE job_id = ?"),
    deleteDocuments: db.prepare("DELETE FROM documents WHERE job_id = ?"),
    deleteJob: db.prepare("DELETE FROM jobs WHERE id = ?"),
  };

  const deleteExpired = db.transaction((now: number) => {
    const ids = statements.expired.all(now).map((row) => row.id);
    for (const id of ids) {
      statements.deleteChunks.run(id);
      statements.deleteDocuments.run(id);
      statements.deleteJob.run(id);
    }
    return ids.length;
  });

  return {
    deleteExpired: (now) => guard(() => deleteExpired(now)),
  };
}
