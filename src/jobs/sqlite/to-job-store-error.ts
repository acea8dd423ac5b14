import { JobStoreError } from "../job-store-error.js";

/** SQLite result codes by what they mean for the store. */
const FULL_CODES = new Set(["SQLITE_FULL"]);
const CORRUPT_CODES = new Set(["SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_CORRUPT_VTAB", "SQLITE_CORRUPT_SEQUENCE", "SQLITE_CORRUPT_INDEX"]);

/** Turns an SQLite failure into a JobStoreError saying what happened and what to do. */
export function toJobStoreError(error: unknown, file: string): unknown {
  if (error instanceof JobStoreError) return error;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== "string") return error;
  if (FULL_CODES.has(code) || code === "SQLITE_IOERR_WRITE" && /space/i.test(String((error as Error).message))) {
    return new JobStoreError("full", `the job store is full: no space left for ${file}; free disk space or wait for finished jobs to expire`, { cause: error });
  }
  if (CORRUPT_CODES.has(code)) {
    return new JobStoreError("corrupt", `the job store ${file} is corrupt (${code}): stop the server, move the file aside (its jobs are lost) or restore a backup, and start it again`, { cause: error });
  }
  if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") {
    return new JobStoreError("locked", `the job store ${file} is in use by another process; give each server its own SUTRA_DATA_DIR`, { cause: error });
  }
  if (code.startsWith("SQLITE_IOERR") || code === "SQLITE_CANTOPEN" || code === "SQLITE_READONLY") {
    return new JobStoreError("io", `the job store ${file} cannot be read or written (${code})`, { cause: error });
  }
  return error;
}

/** Runs one store call, throwing its SQLite failure as a JobStoreError (toJobStoreError). */
export type StoreGuard = <T>(work: () => T) => T;

/**
 * The guard of the store in `file`: every store call runs inside it, so a
 * caller sees only JobStoreErrors for what SQLite reports, whichever part of
 * the store failed.
 */
export function guardStore(file: string): StoreGuard {
  return (work) => {
    try {
      return work();
    } catch (error) {
      throw toJobStoreError(error, file);
    }
  };
}
