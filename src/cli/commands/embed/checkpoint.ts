import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readSync, unlinkSync, writeSync } from "node:fs";

/** What a checkpoint is for: a run is resumed only from a checkpoint with the same fingerprint. */
export interface CheckpointHeader {
  version: 1;
  /** SHA-256 over the input bytes and every option that changes the plan or the vectors. */
  fingerprint: string;
  batchCount: number;
}

/** One finished batch in the journal. */
export interface BatchResult {
  batch: number;
  modelId: string;
  dimensions: number;
  /** `count * dimensions` float32 values, row after row. */
  vectors: Float32Array;
}

/** Where a batch's line lies in the journal, to read it back without holding every vector in memory. */
interface BatchLocation {
  offset: number;
  length: number;
}

/** An open checkpoint journal. */
export interface Checkpoint {
  /** Batches already in the journal (from an earlier run, or this one). */
  readonly done: ReadonlySet<number>;
  /** Appends a finished batch; once this returns, a killed process keeps it. */
  append(result: BatchResult): void;
  /** Reads a finished batch back. */
  read(batch: number): BatchResult;
  /** Closes the journal; `remove` deletes it (the run finished and the output is written). */
  close(remove: boolean): void;
}

/**
 * Opens (or creates) the journal of a `sutra embed` run at `path`: a JSONL
 * file whose first line is the header and every further line one finished
 * batch {batch, model_id, dimensions, vectors: base64 of little-endian
 * float32}. Each batch is one `write` of one line, so killing the process
 * (even with SIGKILL) loses at most the batches still in flight; a torn last
 * line (the process died in the middle of a write) is cut off and that batch
 * is embedded again.
 *
 * An existing journal whose header differs (another input, other options)
 * is refused, unless `restart` asks to start over.
 */
export function openCheckpoint(path: string, header: CheckpointHeader, restart: boolean): Checkpoint {
  if (restart && existsSync(path)) unlinkSync(path);
  const fd = openSync(path, existsSync(path) ? "r+" : "w+");
  const locations = new Map<number, BatchLocation>();
  const size = fstatSync(fd).size;
  let end = 0;
  if (size === 0) {
    end = writeLine(fd, 0, JSON.stringify(header));
  } else {
    const content = Buffer.alloc(size);
    readSync(fd, content, 0, size, 0);
    let lineStart = 0;
    let lineNumber = 0;
    while (lineStart < size) {
      const newline = content.indexOf(0x0a, lineStart);
      if (newline === -1) break;
      const line = content.subarray(lineStart, newline).toString("utf8");
      if (lineNumber === 0) {
        const found = JSON.parse(line) as CheckpointHeader;
        if (found.fingerprint !== header.fingerprint || found.version !== header.version) {
          closeSync(fd);
          throw new Error(`the checkpoint ${path} belongs to another input or other options; use --restart to discard it, or another --checkpoint`);
        }
      } else {
        const { batch } = JSON.parse(line) as { batch: number };
        locations.set(batch, { offset: lineStart, length: newline - lineStart });
      }
      lineNumber += 1;
      lineStart = newline + 1;
    }
    end = lineStart;
    if (end < size) ftruncateSync(fd, end);
    if (lineNumber === 0) end = writeLine(fd, 0, JSON.stringify(header));
  }
  const done = new Set(locations.keys());
  return {
    done,
    append(result) {
      const bytes = Buffer.from(result.vectors.buffer, result.vectors.byteOffset, result.vectors.byteLength);
      const line = JSON.stringify({ batch: result.batch, model_id: result.modelId, dimensions: result.dimensions, vectors: bytes.toString("base64") });
      const offset = end;
      end = writeLine(fd, end, line);
      locations.set(result.batch, { offset, length: end - offset - 1 });
      done.add(result.batch);
    },
    read(batch) {
      const location = locations.get(batch);
      if (location === undefined) throw new Error(`batch ${batch} is not in the checkpoint`);
      const buffer = Buffer.alloc(location.length);
      readSync(fd, buffer, 0, location.length, location.offset);
      const parsed = JSON.parse(buffer.toString("utf8")) as { batch: number; model_id: string; dimensions: number; vectors: string };
      const bytes = Buffer.from(parsed.vectors, "base64");
      const vectors = new Float32Array(bytes.byteLength / 4);
      new Uint8Array(vectors.buffer).set(bytes);
      return { batch: parsed.batch, modelId: parsed.model_id, dimensions: parsed.dimensions, vectors };
    },
    close(remove) {
      closeSync(fd);
      if (remove) unlinkSync(path);
    },
  };
}

/** Writes `line` and a newline at `position` in one write; returns the position after it. */
function writeLine(fd: number, position: number, line: string): number {
  const bytes = Buffer.from(`${line}\n`, "utf8");
  let written = 0;
  while (written < bytes.byteLength) written += writeSync(fd, bytes, written, bytes.byteLength - written, position + written);
  return position + bytes.byteLength;
}
