import { Command, Option } from "commander";
import { addClientOptions, clientFromOptions, positiveInteger, type ClientSettings } from "./client-options.js";
import { DEDUP_MODES, type DedupMode } from "./embed/plan-batches.js";
import { INPUT_FORMATS, type InputFormat } from "./embed/read-records.js";

interface EmbedFlags extends ClientSettings {
  output: string;
  format?: InputFormat;
  field: string;
  idField: string;
  dedup: DedupMode;
  batchSize: number;
  concurrency: number;
  checkpoint?: string;
  restart: boolean;
  keepCheckpoint: boolean;
  model: string;
  dimensions: number;
  instruction: string;
  promptName: string;
  progress: boolean;
}

/**
 * `sutra embed <input> -o <output>`: bulk embedding of a text, JSONL or CSV
 * file into JSONL or `.npy`, with a progress bar, concurrency, dedup and a
 * checkpoint journal that lets a killed run resume (runEmbed). Exit codes:
 * 0 done, 1 failed (the checkpoint keeps what finished), 130 interrupted.
 */
export function addEmbedCommand(program: Command): Command {
  const command = program
    .command("embed")
    .description("embed every text of a file (text lines, a JSONL field or a CSV column) into JSONL or .npy, resumably")
    .argument("<input>", "input file: .txt (one text per line), .jsonl/.ndjson, or .csv with a header row")
    .requiredOption("-o, --output <file>", "output: .npy (float32 matrix, ids in <name>.ids.jsonl) or JSONL ({id, embedding} per line)")
    .addOption(new Option("--format <format>", "input format (default: from the extension)").choices(INPUT_FORMATS))
    .option("--field <name>", "JSONL field or CSV column holding the text", "text")
    .option("--id-field <name>", "JSONL field or CSV column holding the id (missing = the line or row number)", "id")
    .addOption(new Option("--dedup <mode>", "drop repeats: by id, by content hash (SHA-256 of the text), or none").choices(DEDUP_MODES).default("none"))
    .addOption(new Option("--batch-size <n>", "texts per request").default(64).argParser(positiveInteger))
    .addOption(new Option("--concurrency <n>", "requests in flight at once").default(4).argParser(positiveInteger))
    .option("--checkpoint <file>", "checkpoint journal (default: <output>.checkpoint); a rerun with the same input and options resumes from it")
    .option("--restart", "discard an existing checkpoint and start over", false)
    .option("--keep-checkpoint", "keep the checkpoint after the output is written", false)
    .option("--model <model>", "preset, model id, alias or provider:model (default: the server's efficient preset)", "")
    .addOption(new Option("--dimensions <n>", "output dimensions (0 = the model's own)").default(0).argParser((value) => Number.parseInt(value, 10)))
    .option("--instruction <text>", "instruction for instruction-tuned models", "")
    .option("--prompt-name <name>", "the model's named prompt (e.g. query, document)", "")
    .option("--no-progress", "no progress bar");
  return addClientOptions(command).action(async (input: string, flags: EmbedFlags) => {
    const { EmbedInterrupted, runEmbed } = await import("./embed/run-embed.js");
    const client = await clientFromOptions(flags, { onRetry: (line) => process.stderr.write(`sutra embed: ${line}\n`) });
    const stop = new AbortController();
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stop.signal.aborted) process.exit(130);
      process.stderr.write(`\nsutra embed: ${signal}: finishing the requests in flight (again to stop at once)\n`);
      stop.abort();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    try {
      const summary = await runEmbed(client, { ...flags, input }, { stderr: process.stderr, signal: stop.signal });
      const rate = summary.embeddedTexts / (summary.elapsedMs / 1000);
      process.stderr.write(
        `sutra embed: wrote ${summary.records} embeddings (${summary.dimensions} dimensions, ${summary.modelId}) to ${flags.output}; ` +
          `${summary.embeddedTexts} texts embedded in this run at ${Math.round(rate)} texts/s` +
          (summary.resumedBatches > 0 ? `, ${summary.resumedBatches} batches resumed from the checkpoint` : "") +
          (summary.duplicates > 0 ? `, ${summary.duplicates} duplicates dropped (--dedup ${flags.dedup})` : "") +
          (summary.empty > 0 ? `, ${summary.empty} empty texts skipped` : "") +
          "\n",
      );
    } catch (error) {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = error instanceof EmbedInterrupted ? 130 : 1;
    } finally {
      client.close();
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  });
}
