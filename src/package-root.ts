import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The project's root folder, the one holding package.json, build/ (the default model, the
 * playground) and src/. Found by walking up from this module to the first package.json, so that
 * files are found the same way whether the code runs from the TypeScript sources (src/, under
 * tsx or vitest) or compiled (dist/src/, one folder deeper).
 */
export const PACKAGE_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json in ${start} or above`);
  }
}
