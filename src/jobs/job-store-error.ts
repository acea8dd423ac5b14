/**
 * Why the store failed: `full` (no space left, or the store's size limit),
 * `corrupt` (the file is damaged or not a job store), `locked` (another
 * process holds the store), `io` (another I/O failure). The message says what
 * to do; the SQLite error stays in `cause`. Every store implementation throws
 * it, so the job service turns failures into client errors in one place
 * whatever the database.
 */
export class JobStoreError extends Error {
  readonly kind: "full" | "corrupt" | "locked" | "io";

  constructor(kind: JobStoreError["kind"], message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "JobStoreError";
    this.kind = kind;
  }
}
