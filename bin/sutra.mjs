#!/usr/bin/env node
// Runs the compiled CLI with plain node: dist/ is written by `npm ci` (prepare),
// `npm run build`, `npm start` and `npm test` (scripts/build-dist.mjs).
import { existsSync } from "node:fs";

const main = new URL("../dist/src/cli/main.js", import.meta.url);
if (!existsSync(main)) {
  console.error("sutra: the compiled CLI (dist/) is missing; run `npm ci` or `npm run build` in the project first");
  process.exit(1);
}
await import(main.href);
