/**
 * Install-time bundles (`prepare`, after the default model): the playground page
 * (`build/playground/`, served at `GET /`) and the SDK as plain JavaScript
 * (`build/client/{index,node,web}.js`, the package's `./client`, `./client/node`
 * and `./client/web` exports), so the SDK runs in Node without a TypeScript
 * loader and bundlers take it as ES modules. Both with esbuild, offline, in
 * about a second; `npm run build:web` reruns it after editing src/playground or
 * src/client. Runs compiled (dist/scripts/), like build-default-model.ts.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { build } from "esbuild";
import { PACKAGE_ROOT } from "../src/package-root.js";
import { PLAYGROUND_BUILD_DIR, writePlayground } from "../src/playground/build-playground.js";

const started = performance.now();
try {
  const playground = await writePlayground();
  const clientDir = join(PACKAGE_ROOT, "build", "client");
  await rm(clientDir, { recursive: true, force: true });
  await build({
    entryPoints: ["index", "node", "web"].map((name) => join(PACKAGE_ROOT, "src", "client", `${name}.ts`)),
    outdir: clientDir,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    packages: "external",
    logLevel: "warning",
  });
  console.log(
    `sutra: playground (${Math.round(playground.script.length / 1024)} KiB script) in ${PLAYGROUND_BUILD_DIR}, SDK bundles in ${clientDir} [${Math.round(performance.now() - started)} ms]`,
  );
} catch (error) {
  console.error("sutra: bundling the playground and the SDK failed:", error);
  process.exitCode = 1;
}
