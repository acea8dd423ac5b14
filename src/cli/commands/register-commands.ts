import type { Command } from "commander";
import { addBenchCommand } from "./bench-command.js";
import { addEmbedCommand } from "./embed-command.js";
import { addHealthCommand } from "./health-command.js";
import { addJobsCommand } from "./jobs-command.js";
import { addModelsCommand } from "./models-command.js";

/** Adds every client command of `sutra` (all but `serve`): embed, jobs, models, health, bench. */
export function registerCommands(program: Command): Command {
  addEmbedCommand(program);
  addJobsCommand(program);
  addModelsCommand(program);
  addHealthCommand(program);
  addBenchCommand(program);
  return program;
}
