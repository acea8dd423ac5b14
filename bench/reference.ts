import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { CorpusName } from "./corpora.js";

/** Texts per reference batch on the corpora. */
export const REFERENCE_BATCH_SIZE = 32;

/** One corpus's reference timing. */
export interface ReferenceCorpusTiming {
  /** How many texts (from the start of the corpus file) were embedded. */
  texts: number;
  seconds: number;
}

/** What bench/reference-tfjs.ts prints (one JSON line). */
export interface ReferenceReport {
  /** The model benchmark's mixed batch of 32: median ms over `runs`. */
  mixed: { medianMs: number; runs: number };
  corpora: Record<CorpusName, ReferenceCorpusTiming>;
}

/**
 * Runs the TF.js reference in its own process (TF.js must not share a process
 * with onnxruntime) on `runs` mixed batches and the first `batches` batches of
 * each corpus, and returns its report.
 */
export async function runReference(runs: number, batches: number): Promise<ReferenceReport> {
  const script = new URL("./reference-tfjs.ts", import.meta.url).pathname;
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", script, "--runs", String(runs), "--batches", String(batches)], {
    encoding: "utf8",
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as ReferenceReport;
}
