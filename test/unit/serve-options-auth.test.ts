import { Command } from "commander";
import { afterEach, describe, expect, it } from "vitest";
import { OPENAI_MODEL_NAMES, parseModelAliases } from "../../src/api/openai/model-aliases.js";
import { addServeOptions, readServeConfig } from "../../src/cli/serve-options.js";

const NAMES = [
  "SUTRA_AUTH_MODE", "SUTRA_API_KEYS", "SUTRA_API_KEYS_FILE", "SUTRA_JWT_SECRET", "SUTRA_JWT_PUBLIC_KEY", "SUTRA_JWT_ISSUER",
  "SUTRA_JWT_AUDIENCE", "SUTRA_RATE_LIMIT_RPM", "SUTRA_RATE_LIMIT_TPM", "SUTRA_RATE_LIMIT_BURST", "SUTRA_MAX_CONCURRENCY",
  "SUTRA_MODEL_ALIASES", "SUTRA_LOG_LEVEL",
];

function parse(argv: string[]) {
  const command = addServeOptions(new Command("serve").exitOverride());
  command.parse(argv, { from: "user" });
  return { config: readServeConfig(command), help: command.helpInformation().replace(/\s+/g, " ") };
}

afterEach(() => {
  for (const name of NAMES) delete process.env[name];
});

describe("serve options for auth, limits and aliases (the documented flag and env names)", () => {
  it("lists every setting in --help with its env name, and has safe defaults", () => {
    const { config, help } = parse([]);
    for (const name of NAMES) expect(help).toContain(`env: ${name}`);
    expect(config).toMatchObject({ authMode: "none", rateLimitRpm: 0, rateLimitTpm: 0, rateLimitBurst: 0, maxConcurrency: 512, modelAliases: "", logLevel: "info" });
    expect(config.apiKeys).toBeUndefined();
  });

  it("reads env vars, and flags win over them", () => {
    Object.assign(process.env, {
      SUTRA_AUTH_MODE: "api-key",
      SUTRA_API_KEYS: "k1,k2:admin",
      SUTRA_RATE_LIMIT_RPM: "120",
      SUTRA_RATE_LIMIT_TPM: "50000",
      SUTRA_RATE_LIMIT_BURST: "10",
      SUTRA_MAX_CONCURRENCY: "64",
      SUTRA_MODEL_ALIASES: "small=universal-sentence-encoder-lite",
      SUTRA_JWT_ISSUER: "iss-1",
    });
    expect(parse([]).config).toMatchObject({
      authMode: "api-key",
      apiKeys: "k1,k2:admin",
      rateLimitRpm: 120,
      rateLimitTpm: 50000,
      rateLimitBurst: 10,
      maxConcurrency: 64,
      modelAliases: "small=universal-sentence-encoder-lite",
      jwtIssuer: "iss-1",
    });
    expect(parse(["--auth-mode", "jwt", "--rate-limit-rpm", "5"]).config).toMatchObject({ authMode: "jwt", rateLimitRpm: 5 });
    expect(() => parse(["--auth-mode", "basic"])).toThrow();
    expect(() => parse(["--rate-limit-rpm", "-1"])).toThrow();
  });
});

describe("model aliases", () => {
  it("maps OpenAI's names to the default model, lets the setting override them and add more", () => {
    const defaults = parseModelAliases("", "m0");
    expect(Object.keys(defaults).sort()).toEqual([...OPENAI_MODEL_NAMES].sort());
    expect(new Set(Object.values(defaults))).toEqual(new Set(["m0"]));
    expect(parseModelAliases(" text-embedding-3-large = big , fast=m1 ", "m0")).toMatchObject({
      "text-embedding-3-small": "m0",
      "text-embedding-3-large": "big",
      fast: "m1",
    });
    expect(() => parseModelAliases("broken", "m0")).toThrow(/alias=model/);
    expect(() => parseModelAliases("a=b=c", "m0")).toThrow(/alias=model/);
  });
});
