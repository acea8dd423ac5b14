import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeTinyBertModel } from "../support/tiny-models.js";
import { filesOfFolder, startFakeHub, type FakeHub, type FakeHubFile } from "../support/fake-hub.js";
import { startRealService, type RunningService } from "../support/real-service.js";

/**
 * DownloadModel against a hostile hub, on the real service: a listed commit that is a path
 * (`x/../../../victim`) or not a commit id at all, and a file whose body is far longer than the
 * listing declares. Nothing may be written, deleted or renamed outside the models folder, and no
 * more than a file's declared size may reach the disk.
 */

interface DownloadAnswer {
  status: string;
  message: string;
}

const CANARY = "canary: must survive\n";
/** A 10-byte `special_tokens_map.json` the hostile hub serves 30 MB long. */
const DECLARED = Buffer.from('{"a":123}\n');
const BODY_BYTES = 30 * 1024 * 1024;

let root: string;
let modelsDir: string;
let hub: FakeHub;
let running: RunningService;
let files: FakeHubFile[];

async function download(id: string): Promise<DownloadAnswer> {
  const response = await fetch(`${running.baseUrl}/v1/models/${encodeURIComponent(id)}/download`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  expect(response.status).toBe(200);
  return (await response.json()) as DownloadAnswer;
}

/** Polls DownloadModel until the model leaves `downloading`; returns the last answer. */
async function downloadUntilSettled(id: string): Promise<DownloadAnswer> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const answer = await download(id);
    if (answer.status !== "downloading") return answer;
    if (Date.now() > deadline) throw new Error(`download of ${id} did not settle: ${JSON.stringify(answer)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Every file and folder under `dir` (relative), sorted. */
const tree = (dir: string) => readdirSync(dir, { recursive: true }).map(String).sort();

/** Everything under the test's root except the models folder, with the content of each file. */
async function outsideModels(): Promise<Record<string, string>> {
  const entries: Record<string, string> = {};
  for (const path of tree(root).filter((name) => name !== "models" && !name.startsWith(`models/`))) {
    entries[path] = statSync(join(root, path)).isFile() ? await readFile(join(root, path), "utf8") : "(folder)";
  }
  return entries;
}

const resolveRequests = (repo: string, file?: string) =>
  hub.requests.filter((request) => request.path.startsWith(`/${repo}/resolve/`) && (file === undefined || request.path.endsWith(`/${file}`)));

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "sutra-hostile-hub-"));
  modelsDir = join(root, "models");
  await writeTinyBertModel(join(root, "source"), { hiddenSize: 32, intermediateSize: 64, pooling: "mean" });
  files = await filesOfFolder(join(root, "source"));
  for (const victim of ["victim-install", "victim-corrupt", "victim-short"]) {
    await mkdir(join(root, victim));
    await writeFile(join(root, victim, "canary.txt"), CANARY);
  }
  hub = await startFakeHub();
  hub.add({ id: "tiny/traversal", commit: "a".repeat(40), listedSha: "x/../../../victim-install", files });
  hub.add({ id: "tiny/traversal-corrupt", commit: "b".repeat(40), listedSha: "x/../../../victim-corrupt", files, wrongSha256: "0".repeat(64) });
  hub.add({ id: "tiny/short-sha", commit: "c".repeat(40), listedSha: "1234abcd", files });
  const tokensMap: FakeHubFile = { path: "special_tokens_map.json", bytes: DECLARED, lfs: false };
  hub.add({ id: "tiny/overlong", commit: "d".repeat(40), files: [tokensMap, ...files], overlongBody: { path: tokensMap.path, bodyBytes: BODY_BYTES, announceLength: true } });
  hub.add({ id: "tiny/overlong-chunked", commit: "e".repeat(40), files: [tokensMap, ...files], overlongBody: { path: tokensMap.path, bodyBytes: BODY_BYTES, announceLength: false } });
  running = await startRealService({ modelsDir, hfEndpoint: hub.url, modelAllowlist: "tiny/*", cacheSize: 0 });
}, 60_000);

afterAll(async () => {
  await running?.stop();
  await hub?.close();
  await rm(root, { recursive: true, force: true });
});

describe("DownloadModel from a hostile hub", () => {
  it.each([
    ["tiny/traversal", "x/../../../victim-install", "victim-install"],
    ["tiny/traversal-corrupt", "x/../../../victim-corrupt", "victim-corrupt"],
    ["tiny/short-sha", "1234abcd", "victim-short"],
  ])("%s: a listed commit of %j fails the download and touches nothing outside the models folder", async (id, sha, victim) => {
    const before = await outsideModels();
    const last = await downloadUntilSettled(id);
    expect(await outsideModels()).toEqual(before);
    expect(await readFile(join(root, victim, "canary.txt"), "utf8")).toBe(CANARY);
    expect(tree(join(root, victim))).toEqual(["canary.txt"]);
    expect(last.status).toBe("failed");
    expect(last.message).toContain(`names the commit ${JSON.stringify(sha)}, which is not a 40-hex-digit commit id`);
    expect(resolveRequests(id)).toEqual([]);
    expect(existsSync(join(modelsDir, id.replace("/", "--")))).toBe(false);
  });

  it.each([
    ["tiny/overlong", "announced in content-length", "d".repeat(40)],
    ["tiny/overlong-chunked", "chunked, no content-length", "e".repeat(40)],
  ])("%s: a 10-byte file served 30 MB (%s) fails as corrupt after one request, never over 10 bytes on disk", async (id, _how, commit) => {
    const partial = join(modelsDir, ".downloads", `${id.replace("/", "--")}@${commit}`, "special_tokens_map.json.part");
    let largest = 0;
    const watcher = setInterval(() => {
      largest = Math.max(largest, statSync(partial, { throwIfNoEntry: false })?.size ?? 0);
    }, 1);
    let last: DownloadAnswer;
    try {
      last = await downloadUntilSettled(id);
    } finally {
      clearInterval(watcher);
    }
    const requests = resolveRequests(id, "special_tokens_map.json");
    expect(largest).toBeLessThanOrEqual(DECLARED.length);
    expect(requests).toHaveLength(1);
    expect(requests[0].bytesSent).toBeLessThan(BODY_BYTES);
    expect(tree(modelsDir).filter((name) => name.endsWith(".part"))).toEqual([]);
    expect(existsSync(join(modelsDir, id.replace("/", "--")))).toBe(false);
    expect(last.status).toBe("failed");
    expect(last.message).toContain(`special_tokens_map.json: the hub sent more than the ${DECLARED.length} bytes its listing declares`);
  });
});
