import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FAKE_MODEL_ID, fakeVector, startTestServer } from "./transport-fixtures.js";
import type { TestServer } from "./transport-fixtures.js";
import { SYSTEM_PYTHON as PYTHON, pythonCanImport } from "../support/system-python.js";


const CLIENT = new URL("../../examples/python/embed_client.py", import.meta.url).pathname;

const pythonHasGrpc = pythonCanImport("grpc");

const title = pythonHasGrpc
  ? "Python grpcio client examples/python/embed_client.py"
  : "Python grpcio client: skipped because /usr/bin/python3 cannot import grpc (install python3-grpcio)";

describe.skipIf(!pythonHasGrpc)(title, () => {
  let server: TestServer;

  beforeEach(async () => {
    server = await startTestServer();
  });

  afterEach(async () => {
    await server.close();
  });

  /** Runs the example client and returns its exit code and parsed JSON output. */
  async function runClient(...args: string[]): Promise<{ exitCode: number; output: any }> {
    try {
      const { stdout } = await promisify(execFile)(PYTHON, [CLIENT, "--target", `127.0.0.1:${server.port}`, ...args], { timeout: 30_000 });
      return { exitCode: 0, output: JSON.parse(stdout) };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      if (failed.stdout === "") throw new Error(`the Python client crashed: ${failed.stderr}`);
      return { exitCode: failed.code, output: JSON.parse(failed.stdout) };
    }
  }

  it("embeds through reflection-built stubs, matching the embedder exactly", async () => {
    const { exitCode, output } = await runClient("--request-id", "py-1", "--dimensions", "128", "hello", "wörld");
    expect(exitCode).toBe(0);
    expect(output.embeddings).toEqual([Array.from(fakeVector("hello", 128)), Array.from(fakeVector("wörld", 128))]);
    expect(output).toMatchObject({
      model_id: FAKE_MODEL_ID,
      dimensions: 128,
      request_id: "py-1",
      timings_ms: { "x-total-time": "12", "x-tokenization-time": "2", "x-queue-time": "2", "x-inference-time": "8" },
      usage: { prompt_tokens: 2, total_tokens: 2 },
    });
  });

  it.each([
    [["a", ""], "INVALID_ARGUMENT", "EMPTY_INPUT"],
    [[], "INVALID_ARGUMENT", "EMPTY_INPUT"],
    [["--dimensions", "8000", "a"], "INVALID_ARGUMENT", "INVALID_DIMENSIONS"],
    [["--model", "missing", "a"], "NOT_FOUND", "UNKNOWN_MODEL"],
    [["--model", "fail:OVERLOADED", "a"], "RESOURCE_EXHAUSTED", "OVERLOADED"],
  ])("reports %j as %s with the reason %s from ErrorInfo", async (args, code, reason) => {
    const { exitCode, output } = await runClient(...args);
    expect(exitCode).toBe(1);
    expect(output.error).toMatchObject({ code, reason });
  });
});
