import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { PLAYGROUND_BUILD_DIR } from "../../src/playground/build-playground.js";
import { signalGroup, startServeProcess, type ServeProcess } from "../support/serve-process.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SUTRA = join(ROOT, "bin/sutra.mjs");

let server: ServeProcess | undefined;
afterEach(() => {
  if (server !== undefined) signalGroup(server.child, "SIGKILL");
  server = undefined;
});

describe("the compiled build (dist/, run with plain node)", () => {
  it("serves from dist/: the package's version, the default model from build/models, inference in worker threads, the built playground", async () => {
    server = startServeProcess();
    const port = (await server.waitFor("listening")).address!.port;
    await server.waitFor("default model loaded");
    const baseUrl = `http://127.0.0.1:${port}`;

    const health = (await (await fetch(`${baseUrl}/v1/health`)).json()) as { version?: string };
    expect(health.version).toBe((JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version);

    const answer = await fetch(`${baseUrl}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ texts: ["from the compiled build"] }) });
    expect(answer.status).toBe(200);
    const { embeddings } = (await answer.json()) as { embeddings: number[][] };
    expect(embeddings[0]).toHaveLength(512);
    expect(embeddings[0].every(Number.isFinite)).toBe(true);

    const script = await fetch(`${baseUrl}/playground.js`);
    expect(script.status).toBe(200);
    expect(await script.text()).toBe(readFileSync(join(PLAYGROUND_BUILD_DIR, "playground.js"), "utf8"));
  });

  it("`sutra --help` answers from dist/ and lists every command", async () => {
    const child = spawn(process.execPath, [SUTRA, "--help"], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    expect(code).toBe(0);
    for (const command of ["serve", "embed", "jobs", "models", "health", "bench"]) expect(stdout).toMatch(new RegExp(`^\\s+${command}\\b`, "m"));
  });
});
