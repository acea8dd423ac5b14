import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID } from "../../src/models/builtin.js";
import { PACKAGE_ROOT } from "../../src/package-root.js";
import { PLAYGROUND_BUILD_DIR } from "../../src/playground/build-playground.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** The same module compiled into dist/ (`npm test` compiles before vitest runs). */
async function compiled<Module>(sourcePath: string): Promise<Module> {
  return (await import(pathToFileURL(join(ROOT, "dist", sourcePath.replace(/\.ts$/, ".js"))).href)) as Module;
}

describe("files found relative to the code, from src/ and from the compiled dist/src/", () => {
  it("PACKAGE_ROOT is the project root from both", async () => {
    expect(PACKAGE_ROOT).toBe(ROOT.replace(/\/$/, ""));
    expect(JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")).name).toBe("sutra-embedder");
    const fromDist = await compiled<typeof import("../../src/package-root.js")>("src/package-root.ts");
    expect(fromDist.PACKAGE_ROOT).toBe(PACKAGE_ROOT);
  });

  it("the built default model and the built playground are found from both", async () => {
    expect(existsSync(join(BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID, "sutra-model.json"))).toBe(true);
    expect(existsSync(join(PLAYGROUND_BUILD_DIR, "playground.js"))).toBe(true);
    const builtin = await compiled<typeof import("../../src/models/builtin.js")>("src/models/builtin.ts");
    const playground = await compiled<typeof import("../../src/playground/build-playground.js")>("src/playground/build-playground.ts");
    expect(builtin.BUILTIN_MODELS_DIR).toBe(BUILTIN_MODELS_DIR);
    expect(playground.PLAYGROUND_BUILD_DIR).toBe(PLAYGROUND_BUILD_DIR);
  });

  it("dist/ holds the CLI entry and the worker that piscina loads with plain node", () => {
    for (const file of ["src/cli/main.js", "src/inference/worker.js", "scripts/build-default-model.js", "scripts/build-web.js"]) {
      expect(existsSync(join(ROOT, "dist", file)), file).toBe(true);
    }
    expect(readFileSync(join(ROOT, "bin/sutra.mjs"), "utf8")).not.toContain("tsx");
  });
});
