import { closeSync, openSync, renameSync, writeSync } from "node:fs";
import { extname } from "node:path";
import type { InputRecord } from "./read-records.js";

/** Output formats of `sutra embed`, chosen by the output file's extension. */
export type OutputFormat = "jsonl" | "npy";

/** `.npy` for NumPy's format, anything else JSONL. */
export function outputFormatOf(path: string): OutputFormat {
  return extname(path).toLowerCase() === ".npy" ? "npy" : "jsonl";
}

/** Where the ids of a `.npy` output go, row by row: `vectors.npy` -> `vectors.ids.jsonl`. */
export function idsPathOf(npyPath: string): string {
  return `${npyPath.slice(0, -extname(npyPath).length)}.ids.jsonl`;
}

/**
 * A float32 as the shortest decimal with at most 9 significant digits that
 * reads back as the same float32 (9 always suffices), so JSONL output keeps
 * every bit of the vector without the noise digits of its double form.
 */
export function formatFloat32(value: number): number {
  return Number(value.toPrecision(9));
}

/**
 * The 128-byte-aligned header of a version 1.0 `.npy` file holding a
 * little-endian float32 C-order matrix of `rows` x `columns`.
 */
export function npyHeader(rows: number, columns: number): Buffer {
  const dictionary = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${columns}), }`;
  const unpadded = 10 + dictionary.length + 1;
  const padding = (64 - (unpadded % 64)) % 64;
  const text = `${dictionary}${" ".repeat(padding)}\n`;
  const header = Buffer.alloc(10 + text.length);
  header.write("\x93NUMPY", 0, "latin1");
  header[6] = 1;
  header[7] = 0;
  header.writeUInt16LE(text.length, 8);
  header.write(text, 10, "latin1");
  return header;
}

/** Writes the output in record order, batch after batch, into a temporary file renamed into place at the end. */
export interface OutputWriter {
  /** Adds the next batch's records and their vectors (`records.length * dimensions` values). */
  write(records: readonly InputRecord[], vectors: Float32Array, dimensions: number): void;
  /** Finishes the file and moves it to its path. */
  finish(): void;
}

/**
 * Opens the output of a finished run. JSONL: one line per record,
 * `{"id", "embedding"}`. `.npy`: a float32 matrix (records x dimensions), with
 * the ids in `<name>.ids.jsonl` (one `{"id"}` per row). Both are written to
 * `<path>.tmp` first and renamed, so a reader never sees half a file.
 */
export function openOutput(path: string, rows: number): OutputWriter {
  const format = outputFormatOf(path);
  const temporary = `${path}.tmp`;
  const fd = openSync(temporary, "w");
  let position = 0;
  const put = (bytes: Buffer): void => {
    let written = 0;
    while (written < bytes.byteLength) written += writeSync(fd, bytes, written, bytes.byteLength - written, position + written);
    position += bytes.byteLength;
  };
  const idsPath = idsPathOf(path);
  const idsFd = format === "npy" ? openSync(`${idsPath}.tmp`, "w") : undefined;
  let headerWritten = false;
  let expectedDimensions = 0;
  return {
    write(records, vectors, dimensions) {
      if (format === "npy") {
        if (!headerWritten) {
          put(npyHeader(rows, dimensions));
          headerWritten = true;
          expectedDimensions = dimensions;
        }
        if (dimensions !== expectedDimensions) throw new Error(`the server answered ${dimensions} dimensions after ${expectedDimensions}; a .npy matrix needs one size`);
        put(Buffer.from(vectors.buffer, vectors.byteOffset, vectors.byteLength));
        writeSync(idsFd as number, records.map((record) => `${JSON.stringify({ id: record.id })}\n`).join(""));
        return;
      }
      const lines = records.map((record, row) => {
        const embedding = Array.from(vectors.subarray(row * dimensions, (row + 1) * dimensions), formatFloat32);
        return `${JSON.stringify({ id: record.id, embedding })}\n`;
      });
      put(Buffer.from(lines.join(""), "utf8"));
    },
    finish() {
      if (format === "npy" && !headerWritten) put(npyHeader(0, 0));
      closeSync(fd);
      renameSync(temporary, path);
      if (idsFd !== undefined) {
        closeSync(idsFd);
        renameSync(`${idsPath}.tmp`, idsPath);
      }
    },
  };
}
