/**
 * Compiles the TypeScript of src/, gen/ and scripts/ to JavaScript in dist/, in the same layout
 * (src/cli/main.ts -> dist/src/cli/main.js), so the server, the CLI, their worker threads and the
 * install-time scripts run with plain `node`, without a TypeScript loader. `prepare` (every
 * `npm ci`), `npm start` and the test run (vitest global setup) run it first, so dist/ follows the sources.
 *
 * esbuild transpiles each file on its own, reading tsconfig.json, as tsx does at run time: no
 * bundling, imports stay as written (they already end in `.js`), about a second for the whole
 * tree. Type checking is `tsc --noEmit`'s job (`npm test`). A file whose output did not change is
 * left alone and a changed one is replaced by a rename, so a rebuild while a server or a test runs
 * from dist/ does not pull files from under it; outputs of deleted sources are removed.
 *
 * Plain JavaScript because it runs before anything is compiled, with production dependencies only
 * (esbuild is one): the Docker build stage installs no devDependencies.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const OUT_DIR = join(ROOT, "dist");
const SOURCE_FOLDERS = ["src", "gen", "scripts"];

/** Every file under `dir`, as absolute paths; none when `dir` does not exist. */
function filesUnder(dir) {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => join(entry.parentPath ?? entry.path, entry.name));
  } catch (error) {
    if (error.code === "ENOENT") return [];
    throw error;
  }
}

/** Whether `file` holds exactly `contents`. */
function holds(file, contents) {
  try {
    return readFileSync(file).equals(contents);
  } catch {
    return false;
  }
}

const started = performance.now();
try {
  const entryPoints = SOURCE_FOLDERS.flatMap((folder) => filesUnder(join(ROOT, folder))).filter((file) => file.endsWith(".ts") && !file.endsWith(".d.ts"));
  const result = await build({
    entryPoints,
    outdir: OUT_DIR,
    outbase: ROOT,
    format: "esm",
    platform: "node",
    target: "node20",
    write: false,
    logLevel: "warning",
  });
  const outputs = new Set();
  let written = 0;
  for (const output of result.outputFiles) {
    outputs.add(output.path);
    if (holds(output.path, output.contents)) continue;
    mkdirSync(dirname(output.path), { recursive: true });
    const partial = `${output.path}.${process.pid}.partial`;
    writeFileSync(partial, output.contents);
    renameSync(partial, output.path);
    written++;
  }
  let removed = 0;
  for (const file of filesUnder(OUT_DIR)) {
    if (outputs.has(file) || file.endsWith(".partial")) continue;
    rmSync(file, { force: true });
    removed++;
  }
  console.log(
    `sutra: compiled ${outputs.size} files to dist/ (${written} rewritten, ${removed} removed) [${Math.round(performance.now() - started)} ms]`,
  );
} catch (error) {
  console.error("sutra: compiling src/, gen/ and scripts/ to dist/ failed:", error);
  process.exitCode = 1;
}
