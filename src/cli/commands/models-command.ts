import { join, resolve } from "node:path";
import { Command, Option } from "commander";
import cliProgress from "cli-progress";
import type { Model, NodeSutraClient } from "../../client/node.js";
import type { HardwareProfileName } from "../../domain/types.js";
import { describeSentenceTransformersFolder, hashFolder, writeManifest } from "../../models/hf-folder.js";
import { BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID } from "../../models/builtin.js";
import type { VariantLogger } from "../../onnx/quantize/build-variants.js";
import { addClientOptions, clientFromOptions, positiveInteger, type ClientSettings } from "./client-options.js";

/**
 * `models list --profile` choices: the HardwareProfile names in lowercase, listed here so that
 * `sutra --help` need not load the generated service (a test checks they match the enum).
 */
export const PROFILE_CHOICES: HardwareProfileName[] = ["auto", "minimal", "low", "medium", "high", "extreme", "desktop", "server", "h100"];

/**
 * The SDK with protobuf-es, imported when a subcommand runs, not with the CLI, so `sutra --help`
 * starts without them.
 */
async function loadSdk() {
  const [{ toJson }, sdk] = await Promise.all([import("@bufbuild/protobuf"), import("../../client/node.js")]);
  return { ...sdk, toJson, statusName: (status: Model["status"]): string => sdk.ModelStatus[status]?.toLowerCase() ?? "unspecified" };
}

type Sdk = Awaited<ReturnType<typeof loadSdk>>;

/** One line of `models list`: id, status, dimensions, size, score, precisions. */
function modelRow(model: Model, { statusName }: Sdk): string[] {
  return [
    model.id,
    statusName(model.status),
    String(model.dimensions),
    model.sizeMb > 0 ? `${Math.round(model.sizeMb)} MB` : "-",
    model.qualityScore > 0 ? model.qualityScore.toFixed(1) : "-",
    model.precisions.join(",") || "-",
    model.aliases.join(",") || "-",
  ];
}

/** Columns padded to their widest cell. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => row[column].length)));
  return [header, ...rows].map((row) => row.map((cell, column) => cell.padEnd(widths[column])).join("  ").trimEnd()).join("\n");
}

async function withClient(flags: ClientSettings, name: string, body: (client: NodeSutraClient, sdk: Sdk) => Promise<void>): Promise<void> {
  const sdk = await loadSdk();
  const client = await clientFromOptions(flags, { onRetry: (line) => process.stderr.write(`sutra models ${name}: ${line}\n`) });
  try {
    await body(client, sdk);
  } catch (error) {
    const reason = sdk.errorReason(error);
    process.stderr.write(`sutra models ${name}: ${error instanceof Error ? error.message : String(error)}${reason ? ` (${reason})` : ""}\n`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

/**
 * `sutra models list|download|build`. `list` and `download` ask a server
 * (ListModels; DownloadModel, polled with a progress bar until the model is
 * ready or failed); `build` works on local folders: the built-in default
 * model (what `npm ci` runs), or the precision variants and manifest of a
 * sentence-transformers folder.
 */
export function addModelsCommand(program: Command): Command {
  const models = program.command("models").description("list, download and build models");

  addClientOptions(
    models
      .command("list")
      .description("list served, downloaded and catalog models with their status")
      .addOption(new Option("--dimensions <n>", "only models that give this size (native or Matryoshka)").argParser(positiveInteger))
      .addOption(new Option("--profile <name>", "only models suited to this hardware profile").choices(PROFILE_CHOICES))
      .option("--json", "print JSON instead of a table", false),
  ).action(async (flags: ClientSettings & { dimensions?: number; profile?: string; json: boolean }) =>
    withClient(flags, "list", async (client, sdk) => {
      const { HardwareProfile, ModelSchema, toJson } = sdk;
      const profile = flags.profile ? HardwareProfile[flags.profile.toUpperCase() as keyof typeof HardwareProfile] : HardwareProfile.UNSPECIFIED;
      const { models: list } = await client.listModels({ dimensions: flags.dimensions ?? 0, hardwareProfile: profile });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(list.map((model) => toJson(ModelSchema, model)), null, 2)}\n`);
        return;
      }
      process.stdout.write(`${table(["ID", "STATUS", "DIMS", "SIZE", "SCORE", "PRECISIONS", "ALIASES"], list.map((model) => modelRow(model, sdk)))}\n`);
    }),
  );

  addClientOptions(
    models
      .command("download")
      .description("download a model from the server's hub (DownloadModel), showing progress until it is ready")
      .argument("<model-id>", "hub model id, e.g. sentence-transformers/all-MiniLM-L6-v2")
      .option("--revision <rev>", "branch, tag or commit", "")
      .option("--no-wait", "start the download and return")
      .addOption(new Option("--poll-ms <ms>", "how often to ask for progress").default(1000).argParser(positiveInteger)),
  ).action(async (modelId: string, flags: ClientSettings & { revision: string; wait: boolean; pollMs: number }) =>
    withClient(flags, "download", async (client, { ModelStatus, statusName }) => {
      let state = await client.downloadModel(modelId, flags.revision);
      const finished = (status: Model["status"]): boolean => status === ModelStatus.READY || status === ModelStatus.LOADED || status === ModelStatus.FAILED;
      if (flags.wait && !finished(state.status)) {
        const bar = new cliProgress.SingleBar(
          { stream: process.stderr, format: `${modelId} |{bar}| {percentage}% | {phase} | ETA {eta}s`, noTTYOutput: true, notTTYSchedule: 2000 },
          cliProgress.Presets.shades_classic,
        );
        bar.start(100, Math.round(state.progress * 100), { phase: statusName(state.status), eta: "?" });
        try {
          while (!finished(state.status)) {
            await new Promise((resolvePoll) => setTimeout(resolvePoll, flags.pollMs));
            state = await client.downloadModel(modelId, flags.revision);
            bar.update(Math.round(state.progress * 100), { phase: state.message || statusName(state.status), eta: state.etaSeconds > 0 ? Math.ceil(state.etaSeconds) : "?" });
          }
        } finally {
          bar.stop();
        }
      }
      process.stdout.write(
        `${JSON.stringify({ model_id: state.modelId, status: statusName(state.status), progress: state.progress, bytes_downloaded: Number(state.bytesDownloaded), bytes_total: Number(state.bytesTotal), message: state.message }, null, 2)}\n`,
      );
      if (state.status === ModelStatus.FAILED) process.exitCode = 1;
    }),
  );

  models
    .command("build")
    .description("build a model folder locally: with no folder, the built-in default model (USE-Lite to ONNX, as npm ci does); with a sentence-transformers folder, its fp16/int8/int4 variants (each kept only if it passes its quality gate) and sutra-model.json")
    .argument("[folder]", "a sentence-transformers folder with onnx/model.onnx and tokenizer.json")
    .option("--id <model-id>", "the folder's model id (default: read from the folder name)")
    .addOption(new Option("--out <dir>", "where the default model is built").default(join(BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID), `build/models/${DEFAULT_MODEL_ID} in the project`))
    .option("--force", "rebuild the default model even when it is current", false)
    .action(async (folder: string | undefined, flags: { id?: string; out: string; force: boolean }) => {
      const logger: VariantLogger = {
        info: (details: { precision?: string; gate?: { minCosine: number } }, message) =>
          process.stderr.write(`sutra models build: ${details.precision ?? ""} ${message}${details.gate ? ` (min cosine ${details.gate.minCosine.toFixed(6)})` : ""}\n`),
        warn: (details: { precision?: string; reason?: string }, message) =>
          process.stderr.write(`sutra models build: ${details.precision ?? ""} ${message}${details.reason ? `: ${details.reason}` : ""}\n`),
      };
      // The converter and ONNX Runtime load only when a build runs, so `sutra --help` starts without them.
      try {
        if (folder === undefined) {
          const { buildUseLiteFolder } = await import("../../models/use-lite/build-folder.js");
          const result = await buildUseLiteFolder({ outDir: resolve(flags.out), force: flags.force, logger });
          process.stdout.write(`${JSON.stringify({ model_id: DEFAULT_MODEL_ID, folder: resolve(flags.out), skipped: result.skipped, files: Object.keys(result.manifest.files), elapsed_ms: Math.round(result.elapsedMs) }, null, 2)}\n`);
          return;
        }
        const { createVariantPreparer } = await import("../../models/hub/prepare-variants.js");
        const dir = resolve(folder);
        let manifest = await describeSentenceTransformersFolder(dir, flags.id ? { id: flags.id } : {});
        manifest = await createVariantPreparer(logger)(dir, manifest);
        manifest = { ...manifest, files: await hashFolder(dir) };
        await writeManifest(dir, manifest);
        process.stdout.write(`${JSON.stringify({ model_id: manifest.id, folder: dir, dimensions: manifest.dimensions, precisions: Object.keys(manifest.variants) }, null, 2)}\n`);
      } catch (error) {
        process.stderr.write(`sutra models build: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exitCode = 1;
      }
    });
  return models;
}
