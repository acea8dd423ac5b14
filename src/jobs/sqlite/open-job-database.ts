import Database from "better-sqlite3";
import { JobStoreError } from "../job-store-error.js";

/** How long opening waits for another process to let go of the store, in ms. */
const LOCK_WAIT_MS = 2_000;

/**
 * Schema version this code reads and writes (`PRAGMA user_version`). 1: the
 * first; 2: `chunks.checksum`, a checksum of each stored embedding (see
 * resultChecksum). Older stores are migrated when opened (MIGRATIONS).
 */
const SCHEMA_VERSION = 2;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  owner TEXT NOT NULL,
  status TEXT NOT NULL,
  options TEXT NOT NULL,
  requested_chunk_size INTEGER NOT NULL,
  requested_chunk_overlap INTEGER NOT NULL,
  chunk_size INTEGER NOT NULL DEFAULT 0,
  chunk_overlap INTEGER NOT NULL DEFAULT 0,
  model_id TEXT NOT NULL DEFAULT '',
  dimensions INTEGER NOT NULL DEFAULT 0,
  document_count INTEGER NOT NULL,
  documents_chunked INTEGER NOT NULL DEFAULT 0,
  total_chunks INTEGER NOT NULL DEFAULT 0,
  completed_chunks INTEGER NOT NULL DEFAULT 0,
  dispatched_chunks INTEGER NOT NULL DEFAULT 0,
  total_bytes INTEGER NOT NULL,
  prompt_tokens INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER,
  expires_at INTEGER,
  error_code TEXT,
  error_message TEXT,
  resumes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, seq);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_by_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS documents (
  job_id TEXT NOT NULL,
  doc_index INTEGER NOT NULL,
  doc_id TEXT NOT NULL,
  text TEXT NOT NULL,
  metadata TEXT,
  chunk_count INTEGER,
  PRIMARY KEY (job_id, doc_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
  job_id TEXT NOT NULL,
  doc_index INTEGER NOT NULL,
  chunk_index INTEGER NOT NULL,
  start_unit INTEGER NOT NULL,
  end_unit INTEGER NOT NULL,
  start_char INTEGER NOT NULL,
  end_char INTEGER NOT NULL,
  tokens INTEGER NOT NULL,
  embedding BLOB,
  checksum INTEGER,
  PRIMARY KEY (job_id, doc_index, chunk_index)
);
`;

/**
 * What brings a store of the version before each key up to that version; a
 * store is migrated one version at a time, in one transaction with its new
 * `user_version`. A store at version 0 is new and gets SCHEMA as it is.
 */
const MIGRATIONS: ReadonlyMap<number, string> = new Map([
  // Rows stored before keep a NULL checksum: they are checked for plausibility instead (StoredResult.intact).
  [2, "ALTER TABLE chunks ADD COLUMN checksum INTEGER"],
]);

/**
 * Opens the SQLite database of the job store in `file` (created when
 * missing) and makes it ready: write-ahead log with `synchronous=FULL` (every
 * transaction is on disk when it returns), an exclusive lock held until close
 * (a second process gets SQLITE_BUSY: two servers would run the same jobs),
 * the schema created or migrated to SCHEMA_VERSION (a newer one is refused as
 * a JobStoreError of kind `corrupt`), the size limit `maxBytes` when given,
 * and the job table read once, so a damaged or foreign file fails here rather
 * than at the first job. Failures are SQLite's own: the caller guards them.
 */
export function openJobDatabase(file: string, maxBytes: number | undefined): Database.Database {
  const opened = new Database(file, { timeout: LOCK_WAIT_MS });
  try {
    // One process per store, held until close (the OS drops the lock of a killed process).
    opened.pragma("locking_mode = EXCLUSIVE");
    opened.pragma("journal_mode = WAL");
    opened.pragma("synchronous = FULL");
    opened.pragma("foreign_keys = ON");
    const version = opened.pragma("user_version", { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new JobStoreError("corrupt", `the job store ${file} has schema version ${version}, newer than this server's ${SCHEMA_VERSION}`);
    }
    opened.transaction(() => {
      if (version === 0) opened.exec(SCHEMA);
      else for (let next = version + 1; next <= SCHEMA_VERSION; next++) opened.exec(MIGRATIONS.get(next) ?? "");
      opened.pragma(`user_version = ${SCHEMA_VERSION}`);
    }).immediate();
    if (maxBytes !== undefined) {
      const pageSize = opened.pragma("page_size", { simple: true }) as number;
      opened.pragma(`max_page_count = ${Math.max(1, Math.floor(maxBytes / pageSize))}`);
    }
    opened.prepare("SELECT count(*) FROM jobs").get();
    opened.exec("BEGIN IMMEDIATE; COMMIT");
    return opened;
  } catch (error) {
    opened.close();
    throw error;
  }
}
