import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parse as parseCsv } from "csv-parse/sync";

/** Input formats of `sutra embed`. */
export const INPUT_FORMATS = ["text", "jsonl", "csv"] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];

/** One text to embed, as read from the input. */
export interface InputRecord {
  /** The record's id: the id field or column when given and present, else its line (text, JSONL) or row (CSV) number from 1. */
  id: string;
  text: string;
}

/** How to read an input file. */
export interface ReadOptions {
  format: InputFormat;
  /** JSONL field or CSV column holding the text (default "text"). */
  field: string;
  /** JSONL field or CSV column holding the id (default "id"; absent in a record = its line or row number). */
  idField: string;
}

/** What reading found. */
export interface ReadResult {
  records: InputRecord[];
  /** Records skipped because their text was empty or blank (the server refuses empty texts). */
  empty: number;
}

/** The format a file name suggests: `.jsonl`/`.ndjson` JSONL, `.csv` CSV, anything else text lines. */
export function formatOfPath(path: string): InputFormat {
  const extension = extname(path).toLowerCase();
  if (extension === ".jsonl" || extension === ".ndjson") return "jsonl";
  if (extension === ".csv") return "csv";
  return "text";
}

/**
 * Reads every record of `content` in order. Text: one text per line (a
 * trailing `\r` dropped). JSONL: one JSON object per line, the text in
 * `field`. CSV: a header row names the columns (RFC 4180 quoting, via
 * csv-parse), the text in column `field`. Blank lines are skipped; a record
 * whose text is empty or only whitespace is counted in `empty` and left out.
 * A malformed line, or a record without a string text, throws with its line
 * number.
 */
export function readRecords(content: string, options: ReadOptions): ReadResult {
  const records: InputRecord[] = [];
  let empty = 0;
  const add = (text: unknown, id: unknown, position: number, where: string): void => {
    if (typeof text !== "string") throw new Error(`${where}: the field "${options.field}" is missing or not a string`);
    if (text.trim() === "") {
      empty += 1;
      return;
    }
    records.push({ id: id === undefined || id === null || id === "" ? String(position) : String(id), text });
  };
  if (options.format === "csv") {
    const rows = parseCsv(content, { columns: true, skip_empty_lines: true, bom: true, relax_column_count: true }) as Array<Record<string, string>>;
    if (rows.length > 0 && !(options.field in rows[0])) throw new Error(`CSV: no column "${options.field}" (columns: ${Object.keys(rows[0]).join(", ")})`);
    rows.forEach((row, index) => add(row[options.field] ?? "", row[options.idField], index + 1, `CSV row ${index + 1}`));
    return { records, empty };
  }
  const lines = content.split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((raw, index) => {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const lineNumber = index + 1;
    if (options.format === "text") {
      add(line, undefined, lineNumber, `line ${lineNumber}`);
      return;
    }
    if (line.trim() === "") return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new Error(`line ${lineNumber}: not valid JSON`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error(`line ${lineNumber}: not a JSON object`);
    const object = parsed as Record<string, unknown>;
    add(object[options.field], object[options.idField], lineNumber, `line ${lineNumber}`);
  });
  return { records, empty };
}

/** Reads a file (UTF-8, a BOM dropped) and its records. */
export function readRecordsFile(path: string, options: ReadOptions): ReadResult & { content: Buffer } {
  const content = readFileSync(path);
  const text = content.toString("utf8").replace(/^\uFEFF/, "");
  return { ...readRecords(text, options), content };
}
