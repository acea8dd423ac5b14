import { createHash } from "node:crypto";
import cliProgress from "cli-progress";
import type { SutraClient } from "../../../client/index.js";
import { openCheckpoint, type Checkpoint } from "./checkpoint.js";
import { batchRecords, planBatches, type DedupMode } from "./plan-batches.js";
import { formatOfPath, readRecordsFile, type InputFormat } from "./read-records.js";
import { openOutput } from "./write-output.js";

/** Settings of one `sutra embed` run. */
export interface EmbedRunOptions {
  input: string;
  output: string;
  /** Default: from the input's extension (formatOfPath). */
  format?: InputFormat;
  field: string;
  idField: string;
  dedup: DedupMode;
  batchSize: number;
  concurrency: number;
  /** Journal path; default `<output>.checkpoint`. */
  checkpoint?: string;
  /** Discard an existing checkpoint instead of resuming from it. */
  restart: boolean;
  /** Keep the checkpoint after the output is written (default: delete it). */
  keepCheckpoint?: boolean;
  model: string;
  dimensions: number;
  instruction: string;
  promptName: string;
  /** Show a progress bar on stderr (a line per second when stderr is not a terminal). */
  progress: boolean;
}

/** What a run did. */
export interface EmbedSummary {
  /** Records in the output. */
  records: number;
  duplicates: number;
  /** Blank texts left out. */
  empty: number;
  batches: number;
  /** Batches a checkpoint already held when this run started. */
  resumedBatches: number;
  /** Batches (and texts) this run sent to the server. */
  embeddedBatches: number;
  embeddedTexts: number;
  modelId: string;
  dimensions: number;
  elapsedMs: number;
}

/** Thrown when a signal stopped the run: the checkpoint holds what finished; rerunning resumes. */
export class EmbedInterrupted extends Error {}

/**
 * Embeds every record of the input into the output, resumably:
 * 1. reads and dedups the records and cuts them into fixed batches (planBatches);
 * 2. opens the checkpoint journal, which names the batches a killed or failed
 *    earlier run finished (only a journal of the same input and options is used);
 * 3. sends the other batches, `concurrency` at a time, through the SDK (which
 *    retries what is worth retrying), appending each finished batch to the
 *    journal as it arrives;
 * 4. when all are in, writes the output in input order from the journal and
 *    deletes it.
 * A run killed at any point therefore re-embeds at most the batches that were
 * in flight, and the output of a resumed run holds every record once, as an
 * uninterrupted run's would. `signal` stops sending new batches: in-flight
 * ones finish and are kept, then EmbedInterrupted is thrown.
 */
export async function runEmbed(client: SutraClient, options: EmbedRunOptions, io: { stderr: NodeJS.WriteStream; signal?: AbortSignal }): Promise<EmbedSummary> {
  const started = performance.now();
  const format = options.format ?? formatOfPath(options.input);
  const read = readRecordsFile(options.input, { format, field: options.field, idField: options.idField });
  const plan = planBatches(read.records, options.dedup, options.batchSize);
  const embedOptions = { model: options.model, dimensions: options.dimensions, instruction: options.instruction, promptName: options.promptName };
  const fingerprint = createHash("sha256")
    .update(read.content)
    .update(JSON.stringify({ format, field: options.field, idField: options.idField, dedup: options.dedup, batchSize: options.batchSize, ...embedOptions }))
    .digest("hex");
  const checkpointPath = options.checkpoint ?? `${options.output}.checkpoint`;
  const checkpoint = openCheckpoint(checkpointPath, { version: 1, fingerprint, batchCount: plan.batchCount }, options.restart);
  const resumedBatches = [...checkpoint.done].filter((batch) => batch < plan.batchCount).length;
  const pending = Array.from({ length: plan.batchCount }, (_, batch) => batch).filter((batch) => !checkpoint.done.has(batch));
  const doneTexts = plan.records.length - pending.reduce((sum, batch) => sum + batchRecords(plan, batch).length, 0);
  if (resumedBatches > 0) io.stderr.write(`sutra embed: resuming from ${checkpointPath}: ${resumedBatches} of ${plan.batchCount} batches (${doneTexts} texts) already embedded\n`);

  const bar = options.progress ? startProgress(io.stderr, plan.records.length, doneTexts) : undefined;
  const runStarted = performance.now();
  let embeddedTexts = 0;
  let embeddedBatches = 0;
  let failure: unknown;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < pending.length && failure === undefined && !io.signal?.aborted) {
      const batch = pending[next++];
      const records = batchRecords(plan, batch);
      try {
        const response = await client.embed({ ...embedOptions, texts: records.map((record) => record.text) });
        const dimensions = response.embeddings[0]?.values.length ?? 0;
        const vectors = new Float32Array(records.length * dimensions);
        response.embeddings.forEach((embedding, row) => vectors.set(embedding.values, row * dimensions));
        checkpoint.append({ batch, modelId: response.modelInfo?.modelId ?? "", dimensions, vectors });
        embeddedTexts += records.length;
        embeddedBatches += 1;
        const seconds = (performance.now() - runStarted) / 1000;
        bar?.increment(records.length, { rate: seconds > 0 ? Math.round(embeddedTexts / seconds) : 0 });
      } catch (error) {
        failure ??= error;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(options.concurrency, Math.max(1, pending.length)) }, worker));
  } finally {
    bar?.stop();
  }
  if (failure !== undefined) {
    checkpoint.close(false);
    throw new Error(`${failure instanceof Error ? failure.message : String(failure)}\nsutra embed: ${checkpoint.done.size} of ${plan.batchCount} batches are saved in ${checkpointPath}; rerun the same command to resume`, { cause: failure });
  }
  if (io.signal?.aborted) {
    checkpoint.close(false);
    throw new EmbedInterrupted(`sutra embed: interrupted; ${checkpoint.done.size} of ${plan.batchCount} batches are saved in ${checkpointPath}; rerun the same command to resume`);
  }
  const { modelId, dimensions } = writeOutput(checkpoint, plan, options.output);
  checkpoint.close(!options.keepCheckpoint);
  return {
    records: plan.records.length,
    duplicates: plan.duplicates,
    empty: read.empty,
    batches: plan.batchCount,
    resumedBatches,
    embeddedBatches,
    embeddedTexts,
    modelId,
    dimensions,
    elapsedMs: performance.now() - started,
  };
}

/** Writes the output from the journal in batch order; refuses batches embedded by different models or sizes. */
function writeOutput(checkpoint: Checkpoint, plan: ReturnType<typeof planBatches>, path: string): { modelId: string; dimensions: number } {
  const output = openOutput(path, plan.records.length);
  let first: { modelId: string; dimensions: number } | undefined;
  for (let batch = 0; batch < plan.batchCount; batch += 1) {
    const result = checkpoint.read(batch);
    first ??= { modelId: result.modelId, dimensions: result.dimensions };
    if (result.modelId !== first.modelId || result.dimensions !== first.dimensions) {
      throw new Error(
        `batch ${batch} was embedded by ${result.modelId} (${result.dimensions} dimensions), batch 0 by ${first.modelId} (${first.dimensions}); ` +
          "vectors of different models do not mix: use --restart",
      );
    }
    output.write(batchRecords(plan, batch), result.vectors, result.dimensions);
  }
  output.finish();
  return first ?? { modelId: "", dimensions: 0 };
}

/** A progress bar on stderr: done/total texts, rate over this run, ETA; a plain line per second when stderr is not a terminal. */
function startProgress(stream: NodeJS.WriteStream, total: number, start: number): cliProgress.SingleBar {
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: "embed |{bar}| {percentage}% | {value}/{total} texts | {rate} texts/s | ETA {eta_formatted}",
      hideCursor: stream.isTTY === true,
      noTTYOutput: true,
      notTTYSchedule: 1000,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, start, { rate: 0 });
  return bar;
}
