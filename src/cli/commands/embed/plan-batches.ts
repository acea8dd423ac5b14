import { createHash } from "node:crypto";
import type { InputRecord } from "./read-records.js";

/** How `sutra embed` drops repeated records. */
export const DEDUP_MODES = ["none", "id", "hash"] as const;
export type DedupMode = (typeof DEDUP_MODES)[number];

/** The work of one run: the records to embed, in input order, cut into batches. */
export interface BatchPlan {
  /** Records kept after dedup, in input order; the output has one entry per record, in this order. */
  records: InputRecord[];
  /** Records dropped as repeats of an earlier one. */
  duplicates: number;
  /** Batch k holds `records[k * batchSize ..]`, at most batchSize of them. */
  batchSize: number;
  batchCount: number;
}

/** The SHA-256 of a text, hex: the key of `--dedup hash`. */
export function contentHash(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/**
 * Drops repeats (`id`: a record whose id was seen before; `hash`: a record
 * whose text was seen before; the first one wins) and cuts the rest into
 * batches of `batchSize` in input order. The plan depends only on the input
 * and these options, so a rerun on the same input makes the same batches:
 * that is what lets a checkpoint name finished batches by number, and what
 * makes a resumed run send exactly the requests the first run did not finish.
 */
export function planBatches(records: readonly InputRecord[], dedup: DedupMode, batchSize: number): BatchPlan {
  const seen = new Set<string>();
  const kept: InputRecord[] = [];
  for (const record of records) {
    if (dedup !== "none") {
      const key = dedup === "id" ? record.id : contentHash(record.text);
      if (seen.has(key)) continue;
      seen.add(key);
    }
    kept.push(record);
  }
  return { records: kept, duplicates: records.length - kept.length, batchSize, batchCount: Math.ceil(kept.length / batchSize) };
}

/** The records of batch `index`. */
export function batchRecords(plan: BatchPlan, index: number): InputRecord[] {
  return plan.records.slice(index * plan.batchSize, (index + 1) * plan.batchSize);
}
