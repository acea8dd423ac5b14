import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { build } from "esbuild";
import { PACKAGE_ROOT } from "../package-root.js";

/** The page and its script, as the server sends them. */
export interface PlaygroundBundle {
  html: string;
  script: string;
}

/** The page's sources (`index.html`, `main.ts`), read from src/ also when the server runs compiled. */
const SOURCE_DIR = join(PACKAGE_ROOT, "src", "playground");

/** Where `npm ci` (the `prepare` script) leaves the built page: `build/playground/`. */
export const PLAYGROUND_BUILD_DIR = join(PACKAGE_ROOT, "build", "playground");

/**
 * Bundles the playground with esbuild, in memory: `main.ts` with the SDK's
 * connect-web client, protobuf-es and the generated service into one
 * minified ES2020 module for browsers, offline and in well under a second;
 * the page is `index.html` as it is.
 */
export async function bundlePlayground(): Promise<PlaygroundBundle> {
  const result = await build({
    entryPoints: [join(SOURCE_DIR, "main.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    minify: true,
    write: false,
    legalComments: "none",
    logLevel: "silent",
  });
  return { html: await readFile(join(SOURCE_DIR, "index.html"), "utf8"), script: result.outputFiles[0].text };
}

/** Writes the bundle into `dir` (`index.html`, `playground.js`). */
export async function writePlayground(dir = PLAYGROUND_BUILD_DIR): Promise<PlaygroundBundle> {
  const bundle = await bundlePlayground();
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "index.html"), bundle.html);
  await writeFile(join(dir, "playground.js"), bundle.script);
  return bundle;
}

/** The built page from `dir`, or undefined when it was never built there. */
export async function readBuiltPlayground(dir = PLAYGROUND_BUILD_DIR): Promise<PlaygroundBundle | undefined> {
  try {
    return { html: await readFile(join(dir, "index.html"), "utf8"), script: await readFile(join(dir, "playground.js"), "utf8") };
  } catch {
    return undefined;
  }
}
