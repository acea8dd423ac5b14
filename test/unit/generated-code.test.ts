import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const buf = join(process.cwd(), "node_modules/.bin/buf");

function listFiles(root: string, dir = root): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(root, path) : [relative(root, path)];
  });
}

describe("generated code", () => {
  const out = mkdtempSync(join(tmpdir(), "sutra-gen-"));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("gen/ is what `npm run generate` produces from proto/ and third_party/", () => {
    execFileSync(buf, ["generate", "-o", out], { stdio: "pipe" });
    const fresh = listFiles(join(out, "gen")).sort();
    expect(listFiles("gen").sort()).toEqual(fresh);
    for (const file of fresh) {
      expect(readFileSync(join("gen", file), "utf8"), `gen/${file} is stale: run npm run generate`).toBe(
        readFileSync(join(out, "gen", file), "utf8"),
      );
    }
  });

  it("buf lint passes on our protos", () => {
    expect(() => execFileSync(buf, ["lint"], { stdio: "pipe" })).not.toThrow();
  });
});
