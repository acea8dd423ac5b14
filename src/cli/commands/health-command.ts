import type { Command } from "commander";
import { addClientOptions, clientFromOptions, type ClientSettings } from "./client-options.js";

/**
 * `sutra health`: GetHealth as JSON on stdout. Exit 0 when the server is
 * healthy or degraded (it serves), 1 when unhealthy or unreachable, so it
 * works as a container or script probe.
 */
export function addHealthCommand(program: Command): Command {
  const command = program.command("health").description("print the server's health (exit 0 healthy or degraded, 1 unhealthy or unreachable)");
  return addClientOptions(command).action(async (flags: ClientSettings) => {
    const [{ toJson }, { errorReason, GetHealthResponseSchema, HealthStatus }] = await Promise.all([import("@bufbuild/protobuf"), import("../../client/index.js")]);
    const client = await clientFromOptions({ ...flags, retries: Math.min(flags.retries, 2) });
    try {
      const health = await client.getHealth();
      process.stdout.write(`${JSON.stringify(toJson(GetHealthResponseSchema, health), null, 2)}\n`);
      process.exitCode = health.status === HealthStatus.HEALTHY || health.status === HealthStatus.DEGRADED ? 0 : 1;
    } catch (error) {
      process.stderr.write(`sutra health: ${flags.server}: ${error instanceof Error ? error.message : String(error)}${errorReason(error) ? ` (${errorReason(error)})` : ""}\n`);
      process.exitCode = 1;
    } finally {
      client.close();
    }
  });
}
