import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { addServeOptions, connectionLimitsOf, readServeConfig, serveDefaults, type ServeConfig } from "../../src/cli/serve-options.js";

const folder = mkdtempSync(join(tmpdir(), "sutra-serve-config-"));
const optionEnvNames = addServeOptions(new Command("serve")).options.flatMap((option) => (option.envVar ? [option.envVar] : []));
let savedEnv: Record<string, string | undefined> = {};

beforeEach(() => {
  savedEnv = Object.fromEntries(optionEnvNames.map((name) => [name, process.env[name]]));
  for (const name of optionEnvNames) delete process.env[name];
});

afterEach(() => {
  for (const [name, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

afterAll(() => rmSync(folder, { recursive: true, force: true }));

/** `sutra serve ARGV` as main runs it, except that an error throws instead of exiting. */
function readConfig(argv: string[]): ServeConfig {
  const command = addServeOptions(new Command("serve").exitOverride().configureOutput({ writeErr: () => {} }));
  command.parse(argv, { from: "user" });
  return readServeConfig(command);
}

function configFile(name: string, text: string): string {
  const path = join(folder, name);
  writeFileSync(path, text);
  return path;
}

describe("serve defaults", () => {
  it("are what --help shows, for every setting that has one, and what a bare `sutra serve` gets", () => {
    const command = addServeOptions(new Command("serve"));
    const help = command.createHelp();
    const defaults = serveDefaults() as unknown as Record<string, unknown>;
    const shown: Record<string, unknown> = {};
    for (const option of command.options) {
      const described = help.optionDescription(option);
      const match = /\bdefault: (.+?)(?:, env: \S+)?\)$/.exec(described);
      if (option.defaultValue === undefined) {
        expect(match, `${option.long} shows no default`).toBeNull();
        continue;
      }
      expect(match, `${option.long} shows its default`).not.toBeNull();
      shown[option.attributeName()] = JSON.parse(match![1]);
    }
    const withDefaults = Object.fromEntries(Object.entries(defaults).filter(([, value]) => value !== undefined));
    expect(withDefaults).toEqual(shown);
    expect(defaults).toMatchObject({ port: 8080, maxQueue: 8192, cacheSize: 10_000, dataDir: "./data", jobRetentionH: 24, maxStreamsPerConnection: 100 });
    expect(readConfig([])).toEqual(serveDefaults());
  });
});

describe("config file (--config)", () => {
  it("takes numbers as numbers or strings, choices and switches, and settings without a default", () => {
    const file = configFile("good.yaml", "maxQueue: 100\nport: \"8081\"\nprofile: low\ncuda: true\napiKeys: k1,k2:admin\ncacheTtlS: 0.5\n");
    expect(readConfig(["--config", file])).toMatchObject({ maxQueue: 100, port: 8081, profile: "low", cuda: true, apiKeys: "k1,k2:admin", cacheTtlS: 0.5 });
    const json = configFile("good.json", JSON.stringify({ maxInputs: 16, corsOrigins: "https://app.example" }));
    expect(readConfig(["--config", json])).toMatchObject({ maxInputs: 16, corsOrigins: "https://app.example", maxQueue: 8192 });
  });

  it("lies under env vars and flags", () => {
    const file = configFile("layered.yaml", "maxQueue: 100\nmaxInputs: 50\nport: 9000\n");
    process.env.SUTRA_MAX_QUEUE = "7";
    process.env.SUTRA_CONFIG = file;
    expect(readConfig(["--max-inputs", "9"])).toMatchObject({ maxQueue: 7, maxInputs: 9, port: 9000 });
  });

  it("takes the dimensions policy from the file, the env var or the flag (default reduce), and only a policy", () => {
    expect(serveDefaults().dimensionsPolicy).toBe("reduce");
    expect(readConfig(["--config", configFile("policy.yaml", "dimensionsPolicy: ignore\n")]).dimensionsPolicy).toBe("ignore");
    process.env.SUTRA_DIMENSIONS_POLICY = "pad";
    expect(readConfig([]).dimensionsPolicy).toBe("pad");
    expect(readConfig(["--dimensions-policy", "reject"]).dimensionsPolicy).toBe("reject");
    process.env.SUTRA_DIMENSIONS_POLICY = "shrink";
    expect(() => readConfig([])).toThrow(/SUTRA_DIMENSIONS_POLICY.*Allowed choices are reduce, pad, ignore, reject/);
  });

  it("takes the WebSocket ping interval from the env var or the flag (default 30 s) into the transport's limits", () => {
    expect(connectionLimitsOf(serveDefaults()).webSocketPingMs).toBe(30_000);
    process.env.SUTRA_WS_PING_INTERVAL_MS = "5000";
    expect(connectionLimitsOf(readConfig([])).webSocketPingMs).toBe(5000);
    expect(connectionLimitsOf(readConfig(["--ws-ping-interval-ms", "250"])).webSocketPingMs).toBe(250);
    process.env.SUTRA_WS_PING_INTERVAL_MS = "0";
    expect(() => readConfig([])).toThrow(/SUTRA_WS_PING_INTERVAL_MS/);
  });

  it.each([
    ["maxQueue: lots\n", /setting "maxQueue": expected a non-negative integer, got "lots"/],
    ["maxQueue: -1\n", /setting "maxQueue": expected a non-negative integer, got "-1"/],
    ["maxInputs: 2.5\n", /setting "maxInputs": expected a non-negative integer, got "2.5"/],
    ["jobRetentionH: 0\n", /setting "jobRetentionH": expected a positive number, got "0"/],
    ["port: \"\"\n", /setting "port": expected a non-negative integer, got ""/],
    ["port:\n", /setting "port": expected a number or string, got null/],
    ["profile: turbo\n", /setting "profile": Allowed choices are auto, minimal/],
    ["cuda: maybe\n", /setting "cuda": expected true or false, got "maybe"/],
    ["allowedHosts: [a, b]\n", /setting "allowedHosts": expected a string, got \["a","b"\]/],
    ["maxQeue: 5\n", /unknown setting "maxQeue"/],
    ["- maxQueue: 5\n", /expected a mapping of settings/],
    ["maxQueue: [\n", /cannot read it/],
  ])("refuses %j at start-up, naming the file and the setting", (text, message) => {
    const file = configFile("bad.yaml", text);
    expect(() => readConfig(["--config", file])).toThrow(message);
    expect(() => readConfig(["--config", file])).toThrow(`config file ${file}: `);
  });

  it("refuses a bad value from a flag or an env var the same way, naming the flag or the variable", () => {
    expect(() => readConfig(["--max-queue", "lots"])).toThrow(/--max-queue <n>.*expected a non-negative integer, got "lots"/);
    process.env.SUTRA_MAX_QUEUE = "-1";
    expect(() => readConfig([])).toThrow(/SUTRA_MAX_QUEUE.*expected a non-negative integer, got "-1"/);
  });
});
