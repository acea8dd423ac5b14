import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { basename, extname } from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { Command, Option } from "commander";
import cliProgress from "cli-progress";
import type { Job, JobStatus, NodeSutraClient } from "../../client/node.js";
import { addClientOptions, clientFromOptions, positiveInteger, type ClientSettings } from "./client-options.js";
import { formatFloat32 } from "./embed/write-output.js";

/** Job statuses as flags and output spell them: JobStatus names in lowercase. */
const STATUS_NAMES = ["queued", "running", "completed", "failed", "cancelled"];
const FINISHED_NAMES = ["completed", "failed", "cancelled"];

/**
 * The SDK with protobuf-es, and what the subcommands build from them. Imported when a subcommand
 * runs, not with the CLI, so `sutra --help` starts without them.
 */
async function loadSdk() {
  const [{ toJson }, sdk] = await Promise.all([import("@bufbuild/protobuf"), import("../../client/node.js")]);
  const statusOf = (name: string): JobStatus => sdk.JobStatus[name.toUpperCase() as keyof typeof sdk.JobStatus];
  const finished = new Set(FINISHED_NAMES.map(statusOf));
  /** A job as the CLI prints it: proto3 JSON with the status as a lowercase word. */
  const jobJson = (job: Job): Record<string, unknown> => ({
    ...(toJson(sdk.JobSchema, job) as Record<string, unknown>),
    status: STATUS_NAMES.find((name) => statusOf(name) === job.status) ?? "unspecified",
  });
  return { ...sdk, statusOf, finished, jobJson };
}

type Sdk = Awaited<ReturnType<typeof loadSdk>>;

/** A document of `jobs submit`. */
interface SubmitDocument {
  id: string;
  text: string;
  metadata?: JsonObject;
}

/**
 * Documents from the `jobs submit` arguments: one `.jsonl` file holds a
 * document per line ({id, text, metadata}, names set by flags); any other
 * files are one document each, the file name its id.
 */
export function readJobDocuments(files: readonly string[], fields: { field: string; idField: string; metadataField: string }): SubmitDocument[] {
  if (files.length === 1 && [".jsonl", ".ndjson"].includes(extname(files[0]).toLowerCase())) {
    return readFileSync(files[0], "utf8")
      .split("\n")
      .map((line, index) => ({ line: line.trim(), number: index + 1 }))
      .filter(({ line }) => line !== "")
      .map(({ line, number }) => {
        const record = JSON.parse(line) as Record<string, unknown>;
        const text = record[fields.field];
        if (typeof text !== "string") throw new Error(`line ${number}: the field "${fields.field}" is missing or not a string`);
        const metadata = record[fields.metadataField];
        const id = record[fields.idField];
        return {
          id: id === undefined || id === null ? `line-${number}` : String(id),
          text,
          ...(metadata && typeof metadata === "object" && !Array.isArray(metadata) ? { metadata: metadata as JsonObject } : {}),
        };
      });
  }
  return files.map((file) => ({ id: basename(file), text: readFileSync(file, "utf8") }));
}

const print = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};

/** Runs one job subcommand with its client, turning failures into a message on stderr and exit code 1. */
async function withClient(flags: ClientSettings, name: string, body: (client: NodeSutraClient, sdk: Sdk) => Promise<void>): Promise<void> {
  const sdk = await loadSdk();
  const client = await clientFromOptions(flags, { onRetry: (line) => process.stderr.write(`sutra jobs ${name}: ${line}\n`) });
  try {
    await body(client, sdk);
  } catch (error) {
    const reason = sdk.errorReason(error);
    process.stderr.write(`sutra jobs ${name}: ${error instanceof Error ? error.message : String(error)}${reason ? ` (${reason})` : ""}\n`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

/** Polls a job until it finishes, with a progress bar over its chunks on stderr. */
async function waitForJob(client: NodeSutraClient, job: Job, intervalMs: number, { finished, jobJson }: Sdk): Promise<Job> {
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: "job {id} {status} |{bar}| {percentage}% | {value}/{total} chunks | ETA {eta_formatted}", noTTYOutput: true, notTTYSchedule: 2000 },
    cliProgress.Presets.shades_classic,
  );
  bar.start(Math.max(1, Number(job.totalChunks)), Number(job.completedChunks), { id: job.id, status: jobJson(job).status });
  let current = job;
  try {
    while (!finished.has(current.status)) {
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
      current = await client.getJob(current.id);
      bar.setTotal(Math.max(1, Number(current.totalChunks)));
      bar.update(Number(current.completedChunks), { status: jobJson(current).status });
    }
  } finally {
    bar.stop();
  }
  return current;
}

/**
 * `sutra jobs submit|status|list|results|cancel`: document jobs (docs/JOBS.md)
 * through the SDK. Jobs and their outputs print as JSON; `results` writes
 * JSONL, one chunk per line.
 */
export function addJobsCommand(program: Command): Command {
  const jobs = program.command("jobs").description("document jobs: long documents chunked and embedded in the background");

  addClientOptions(
    jobs
      .command("submit")
      .description("create a job from one .jsonl file (a document per line) or from files (one document each, named by file)")
      .argument("<files...>", "documents")
      .option("--field <name>", "JSONL field holding the text", "text")
      .option("--id-field <name>", "JSONL field holding the document id", "id")
      .option("--metadata-field <name>", "JSONL field holding the metadata object", "metadata")
      .option("--model <model>", "preset, model id or alias", "")
      .addOption(new Option("--dimensions <n>", "output dimensions (0 = native)").default(0).argParser((value) => Number.parseInt(value, 10)))
      .option("--instruction <text>", "instruction for instruction-tuned models", "")
      .option("--prompt-name <name>", "the model's named prompt", "")
      .addOption(new Option("--chunk-size <tokens>", "tokens per chunk (0 = the model's window)").default(0).argParser((value) => Number.parseInt(value, 10)))
      .addOption(new Option("--chunk-overlap <tokens>", "tokens a chunk repeats from the previous one").default(0).argParser((value) => Number.parseInt(value, 10)))
      .option("--wait", "wait for the job to finish, with a progress bar", false)
      .addOption(new Option("--poll-ms <ms>", "with --wait, how often to ask").default(1000).argParser(positiveInteger)),
  ).action(async (files: string[], flags: ClientSettings & Record<string, string | number | boolean>) =>
    withClient(flags, "submit", async (client, sdk) => {
      const documents = readJobDocuments(files, { field: String(flags.field), idField: String(flags.idField), metadataField: String(flags.metadataField) });
      let job = await client.createJob({
        documents,
        model: String(flags.model),
        dimensions: Number(flags.dimensions),
        instruction: String(flags.instruction),
        promptName: String(flags.promptName),
        chunking: { chunkSize: Number(flags.chunkSize), chunkOverlap: Number(flags.chunkOverlap) },
      });
      if (flags.wait) job = await waitForJob(client, job, Number(flags.pollMs), sdk);
      print(sdk.jobJson(job));
      if (flags.wait && job.status !== sdk.JobStatus.COMPLETED) process.exitCode = 1;
    }),
  );

  addClientOptions(jobs.command("status").description("print a job's status, progress and counts").argument("<job-id>", "the job's id, as submit printed it")).action(
    async (jobId: string, flags: ClientSettings) => withClient(flags, "status", async (client, { jobJson }) => print(jobJson(await client.getJob(jobId)))),
  );

  addClientOptions(
    jobs
      .command("list")
      .description("list jobs, newest first")
      .addOption(new Option("--status <status>", "only jobs in this status").choices(STATUS_NAMES))
      .addOption(new Option("--limit <n>", "jobs per page").default(50).argParser(positiveInteger))
      .addOption(new Option("--offset <n>", "jobs to skip").default(0).argParser((value) => Number.parseInt(value, 10))),
  ).action(async (flags: ClientSettings & { status?: string; limit: number; offset: number }) =>
    withClient(flags, "list", async (client, { jobJson, statusOf, JobStatus }) => {
      const page = await client.listJobs({ status: flags.status ? statusOf(flags.status) : JobStatus.UNSPECIFIED, limit: flags.limit, offset: flags.offset });
      print({ jobs: page.jobs.map(jobJson), pagination: page.pagination ? { ...page.pagination } : undefined });
    }),
  );

  addClientOptions(
    jobs
      .command("results")
      .description("stream a job's chunk embeddings as JSONL ({document_id, document_index, chunk_index, start_char, end_char, tokens, text, metadata, embedding})")
      .argument("<job-id>", "the job's id, as submit printed it")
      .option("-o, --output <file>", "write to a file instead of stdout")
      .addOption(new Option("--offset <n>", "skip this many results (resume a download)").default(0).argParser((value) => Number.parseInt(value, 10)))
      .option("--no-text", "leave the chunk text out"),
  ).action(async (jobId: string, flags: ClientSettings & { output?: string; offset: number; text: boolean }) =>
    withClient(flags, "results", async (client) => {
      const fd = flags.output ? openSync(flags.output, flags.offset > 0 ? "a" : "w") : 1;
      let count = 0;
      try {
        for await (const result of client.jobResults(jobId, flags.offset)) {
          const line = {
            document_id: result.documentId,
            document_index: result.documentIndex,
            chunk_index: result.chunkIndex,
            start_char: result.startChar,
            end_char: result.endChar,
            tokens: result.tokens,
            ...(flags.text ? { text: result.text } : {}),
            ...(result.metadata ? { metadata: result.metadata } : {}),
            embedding: (result.embedding?.values ?? []).map(formatFloat32),
          };
          writeSync(fd, `${JSON.stringify(line)}\n`);
          count += 1;
        }
      } finally {
        if (fd !== 1) closeSync(fd);
      }
      if (flags.output) process.stderr.write(`sutra jobs results: ${count} results written to ${flags.output}\n`);
    }),
  );

  addClientOptions(jobs.command("cancel").description("cancel a queued or running job (a finished job is left as it is)").argument("<job-id>", "the job's id, as submit printed it")).action(
    async (jobId: string, flags: ClientSettings) => withClient(flags, "cancel", async (client, { jobJson }) => print(jobJson(await client.cancelJob(jobId)))),
  );
  return jobs;
}
