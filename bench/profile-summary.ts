/**
 * Summarises V8 CPU profiles (`npm run bench -- --cpu-prof DIR` writes one per
 * thread of the service process) as text: per profile, the share of wall time
 * that was idle, and the functions with the most self time and the most
 * inclusive time (a function counts once per sample however deep it recurses).
 *
 * Run: `npx tsx bench/profile-summary.ts DIR_OR_FILES... [--top N] [--match REGEX] [--skip S]`
 * (`--match` keeps only functions whose "name file:line" matches, e.g. `src/|zlib`;
 * `--skip` leaves out the first S seconds of each profile, e.g. the server's start-up).
 * Shares are of the wall time counted, and of the busy (non-idle) time.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: "string", default: "25" }, match: { type: "string" }, skip: { type: "string", default: "0" } },
});
const top = Number(values.top);
const match = values.match ? new RegExp(values.match) : undefined;
const skipMicros = Number(values.skip) * 1e6;

const files = positionals.flatMap((path) =>
  statSync(path).isDirectory()
    ? readdirSync(path).filter((name) => name.endsWith(".cpuprofile")).sort().map((name) => join(path, name))
    : [path]);
if (files.length === 0) throw new Error("usage: npx tsx bench/profile-summary.ts DIR_OR_FILES... [--top N] [--match REGEX]");

const label = (node: ProfileNode) => {
  const { functionName, url, lineNumber } = node.callFrame;
  return `${functionName || "(anonymous)"} ${url.split("/").slice(-2).join("/")}:${lineNumber + 1}`;
};
const IDLE = new Set(["(idle)", "(root)", "(program)"]);

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let elapsed = 0;
  profile.samples.forEach((sample, index) => {
    const micros = profile.timeDeltas[index + 1] ?? 0;
    elapsed += profile.timeDeltas[index] ?? 0;
    if (elapsed < skipMicros) return;
    total += micros;
    const leaf = nodes.get(sample);
    if (!leaf || leaf.callFrame.functionName === "(idle)") {
      idle += micros;
      return;
    }
    self.set(label(leaf), (self.get(label(leaf)) ?? 0) + micros);
    const seen = new Set<string>();
    for (let id: number | undefined = sample; id !== undefined; id = parents.get(id)) {
      const node = nodes.get(id);
      if (!node || IDLE.has(node.callFrame.functionName)) continue;
      const key = label(node);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + micros);
    }
  });
  const rows = (table: Map<string, number>) =>
    [...table].filter(([key]) => !match || match.test(key)).sort((a, b) => b[1] - a[1]).slice(0, top)
      .map(([key, micros]) => `  ${((micros / total) * 100).toFixed(1).padStart(5)}%  ${((micros / (total - idle)) * 100).toFixed(1).padStart(5)}% of busy  ${key}`);
  console.log(`== ${file}: ${(total / 1e6).toFixed(1)} s counted, idle ${((idle / total) * 100).toFixed(1)}%`);
  console.log(" self time:");
  console.log(rows(self).join("\n"));
  console.log(" inclusive time:");
  console.log(rows(inclusive).join("\n"));
  console.log("");
}
