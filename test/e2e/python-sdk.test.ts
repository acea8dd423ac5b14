import { execFile } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRealService, type RunningService } from "../support/real-service.js";
import { startTestServer, type TestServer } from "./transport-fixtures.js";
import { SYSTEM_PYTHON as PYTHON, pythonCanImport } from "../support/system-python.js";


const REPOSITORY = new URL("../../", import.meta.url).pathname;

const pythonHasSdkPackages = pythonCanImport("aiohttp, numpy, pytest");
const title = pythonHasSdkPackages
  ? "Python SDK (clients/python): its pytest suite against the real service"
  : "Python SDK: skipped because /usr/bin/python3 cannot import aiohttp, numpy and pytest (install python3-aiohttp, python3-numpy and python3-pytest)";

/** Runs pytest on the SDK's tests with `env` added to this process's environment; resolves with its exit code and output. */
function runPytest(env: Record<string, string>): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      ["-m", "pytest", "clients/python/tests", "-q", "-rfEs", "-p", "no:cacheprovider"],
      { cwd: REPOSITORY, env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", ...env }, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, output: `${stdout}${stderr}` }),
    );
  });
}

describe.skipIf(!pythonHasSdkPackages)(title, () => {
  let running: RunningService;
  let pinging: TestServer;

  beforeAll(async () => {
    // Downloads limited to one organisation, so the SDK's test of a refused id gets FORBIDDEN without reaching a hub.
    running = await startRealService({ modelAllowlist: "sentence-transformers/*" });
    // The real service pings every 30 s; this server (the same transport, a fake engine) pings every 100 ms.
    pinging = await startTestServer({ connectionLimits: { webSocketPingMs: 100 } });
  });
  afterAll(async () => {
    await pinging?.close();
    await running?.stop();
  });

  it("every pytest test passes against the real service, none skipped", async () => {
    const { code, output } = await runPytest({
      SUTRA_BASE_URL: `${running.baseUrl}/v1`,
      SUTRA_PING_BASE_URL: `${pinging.baseUrl}/v1`,
      SUTRA_API_KEY: "",
    });
    const summary = output.trim().split("\n").at(-1) ?? "";
    expect(code, output).toBe(0);
    expect(summary, output).toMatch(/^\d+ passed in /);
  }, 150_000);
});
