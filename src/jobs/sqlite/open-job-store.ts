import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { JobStore } from "../job-store.js";
import { createChunkRows } from "./create-chunk-rows.js";
import { createJobRows } from "./create-job-rows.js";
import { createJobSweep } from "./create-job-sweep.js";
import { createResultRows } from "./create-result-rows.js";
import { openJobDatabase } from "./open-job-database.js";
import { guardStore } from "./to-job-store-error.js";

/** File name of the job store inside the data folder. */
export const JOB_STORE_FILE = "jobs.sqlite3";

/** Options of openJobStore. */
export interface JobStoreOptions {
  /** The data folder (`SUTRA_DATA_DIR`); created when missing. */
  dataDir: string;
  /**
   * Largest store in bytes (SQLite's page count limit); beyond it writes fail
   * as a full disk would. For tests; absent = the disk's size.
   */
  maxBytes?: number;
}

/**
 * Opens (or creates) the job store: one SQLite database, `jobs.sqlite3` in
 * the data folder, through better-sqlite3. Write-ahead log with
 * `synchronous=FULL`: every transaction is on disk (fsync) when it returns,
 * so a `kill -9` or a power cut loses nothing committed. Opening reads the
 * schema and the job table, so a damaged or foreign file is refused at once
 * with a JobStoreError of kind `corrupt`, and takes an exclusive lock held
 * until close, so a second process on the same folder gets one of kind
 * `locked` (two servers would run the same jobs); SQLite failures later become
 * JobStoreErrors too (`full`, `corrupt`, `io`). Each stored embedding carries
 * a checksum of its bytes and its row's identity, checked when results are
 * read (`StoredResult.intact`), so bytes damaged on disk are reported rather
 * than served. A store of an older schema is migrated when opened. Calls are
 * synchronous (they run on the event loop): each is one short transaction.
 */
export function openJobStore(options: JobStoreOptions): JobStore {
  mkdirSync(options.dataDir, { recursive: true });
  const file = join(options.dataDir, JOB_STORE_FILE);
  const guard = guardStore(file);
  const db = guard(() => openJobDatabase(file, options.maxBytes));
  return {
    ...createJobRows(db, guard),
    ...createChunkRows(db, guard),
    ...createResultRows(db, guard),
    ...createJobSweep(db, guard),
    close: () => db.close(),
  };
}
