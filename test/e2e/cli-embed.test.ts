import { spawn } from "node:child_process";
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRealService, type RunningService } from "../support/real-service.js";

const SUTRA = new URL("../../bin/sutra.mjs", import.meta.url).pathname;
const WORDS = "alpha beta gamma delta search vector embedding model server client batch token query answer".split(" ");

/** A finished CLI run. */
interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `sutra <args>` against the test server; `killWhen` is polled every 25 ms and SIGKILLs the CLI when it says so. */
function runCli(args: string[], baseUrl: string, killWhen?: () => boolean): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SUTRA, ...args], { env: { ...process.env, SUTRA_URL: baseUrl }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const poll = killWhen
      ? setInterval(() => {
          if (killWhen()) child.kill("SIGKILL");
        }, 25)
      : undefined;
    child.once("error", reject);
    child.once("close", (code, signal) => {
      if (poll) clearInterval(poll);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Texts the server embedded so far (`sutra_embeddings_total` summed over labels). */
async function embeddedSoFar(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith("sutra_embeddings_total"))
    .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0);
}

/**
 * Counts the finished batches of a checkpoint journal as it grows (its lines less the header),
 * reading only the bytes added since the last call: the kill test polls it every 25 ms.
 */
function journalCounter(path: string): () => number {
  let offset = 0;
  let lines = 0;
  return () => {
    if (!existsSync(path)) return 0;
    const fd = openSync(path, "r");
    try {
      const size = fstatSync(fd).size;
      if (size < offset) [offset, lines] = [0, 0];
      const fresh = Buffer.alloc(size - offset);
      readSync(fd, fresh, 0, fresh.byteLength, offset);
      offset = size;
      for (let at = fresh.indexOf(0x0a); at !== -1; at = fresh.indexOf(0x0a, at + 1)) lines += 1;
    } finally {
      closeSync(fd);
    }
    return Math.max(0, lines - 1);
  };
}

describe("sutra embed (CLI) against a real service", () => {
  let running: RunningService;
  let dir: string;

  beforeAll(async () => {
    running = await startRealService();
    dir = mkdtempSync(join(tmpdir(), "sutra-cli-"));
  });
  afterAll(async () => {
    await running?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("5,000 texts: killed (SIGKILL) at about 50%, rerun resumes, re-embeds at most the in-flight batches, and writes what an uninterrupted run writes", async () => {
    const input = join(dir, "corpus.jsonl");
    const lines = Array.from({ length: 5000 }, (_, index) => {
      const words = Array.from({ length: 3 + (index % 9) }, (_, word) => WORDS[(index * 7 + word * 3) % WORDS.length]);
      return JSON.stringify({ id: `doc-${index}`, body: `${index} ${words.join(" ")}` });
    });
    writeFileSync(input, `${lines.join("\n")}\n`);
    const common = ["embed", input, "--field", "body", "--batch-size", "50", "--concurrency", "4"];

    const whole = join(dir, "whole.jsonl");
    const uninterrupted = await runCli([...common, "-o", whole], running.baseUrl);
    expect(uninterrupted.code, uninterrupted.stderr).toBe(0);

    const resumedPath = join(dir, "resumed.jsonl");
    const checkpoint = `${resumedPath}.checkpoint`;
    const before = await embeddedSoFar(running.baseUrl);
    const journalBatches = journalCounter(checkpoint);
    const killed = await runCli([...common, "-o", resumedPath], running.baseUrl, () => journalBatches() >= 50);
    expect(killed.signal).toBe("SIGKILL");
    expect(existsSync(resumedPath)).toBe(false);
    const savedBatches = journalCounter(checkpoint)();
    expect(savedBatches).toBeGreaterThanOrEqual(50);
    expect(savedBatches).toBeLessThan(100);

    const resumed = await runCli([...common, "-o", resumedPath], running.baseUrl);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`resuming from ${checkpoint}: ${savedBatches} of 100 batches`);
    expect(resumed.stderr).toContain(`${5000 - savedBatches * 50} texts embedded in this run`);
    expect(existsSync(checkpoint)).toBe(false);
    // Both runs together: every text once, plus at most the batches in flight when the first was killed.
    const sent = (await embeddedSoFar(running.baseUrl)) - before;
    expect(sent).toBeGreaterThanOrEqual(5000);
    expect(sent).toBeLessThanOrEqual(5000 + 4 * 50);

    const output = readFileSync(resumedPath, "utf8");
    const records = output.trimEnd().split("\n").map((line) => JSON.parse(line) as { id: string; embedding: number[] });
    expect(records.map((record) => record.id)).toEqual(Array.from({ length: 5000 }, (_, index) => `doc-${index}`));
    expect(records.every((record) => record.embedding.length === 512)).toBe(true);
    // At concurrency 4 the server may batch a text with other requests' texts, which moves its
    // vector by up to the service's batch-invariance bar (1e-6, BATCH_INVARIANCE_TOLERANCE); two uninterrupted
    // runs differ the same way. Everything else is byte-identical.
    const reference = readFileSync(whole, "utf8").trimEnd().split("\n").map((line) => JSON.parse(line) as { id: string; embedding: number[] });
    const withoutVectors = (rows: typeof records): string => JSON.stringify(rows.map((row) => ({ ...row, embedding: row.embedding.length })));
    expect(withoutVectors(records) === withoutVectors(reference)).toBe(true);
    const worst = Math.max(...records.map((record, row) => Math.max(...record.embedding.map((value, column) => Math.abs(value - reference[row].embedding[column])))));
    expect(worst).toBeLessThanOrEqual(1e-6);
  }, 400_000);

  it("at concurrency 1 a killed and resumed run writes a byte-identical file to an uninterrupted one", async () => {
    const input = join(dir, "sequential.txt");
    writeFileSync(input, `${Array.from({ length: 1000 }, (_, index) => `line ${index}: ${WORDS.slice(0, 2 + (index % 13)).join(" ")}`).join("\n")}\n`);
    const common = ["embed", input, "--batch-size", "25", "--concurrency", "1", "--no-progress"];
    const whole = join(dir, "sequential-whole.jsonl");
    expect((await runCli([...common, "-o", whole], running.baseUrl)).code).toBe(0);
    const resumedPath = join(dir, "sequential-resumed.jsonl");
    const journalBatches = journalCounter(`${resumedPath}.checkpoint`);
    const killed = await runCli([...common, "-o", resumedPath], running.baseUrl, () => journalBatches() >= 20);
    expect(killed.signal).toBe("SIGKILL");
    const resumed = await runCli([...common, "-o", resumedPath], running.baseUrl);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resuming from .* (2\d|3\d) of 40 batches/);
    expect(readFileSync(resumedPath).equals(readFileSync(whole))).toBe(true);
  }, 200_000);

  it("dedup by id and by content hash: repeats are left out and never sent", async () => {
    const input = join(dir, "dupes.jsonl");
    const rows = [
      { id: "a", text: "first text" },
      { id: "b", text: "second text" },
      { id: "a", text: "first text, same id" },
      { id: "c", text: "first text" },
      { id: "d", text: "  " },
      { id: "e", text: "third text" },
    ];
    writeFileSync(input, rows.map((row) => JSON.stringify(row)).join("\n"));
    const byId = join(dir, "by-id.jsonl");
    let before = await embeddedSoFar(running.baseUrl);
    const idRun = await runCli(["embed", input, "-o", byId, "--dedup", "id", "--no-progress"], running.baseUrl);
    expect(idRun.code, idRun.stderr).toBe(0);
    expect(readFileSync(byId, "utf8").trimEnd().split("\n").map((line) => JSON.parse(line).id)).toEqual(["a", "b", "c", "e"]);
    expect((await embeddedSoFar(running.baseUrl)) - before).toBe(4);
    expect(idRun.stderr).toContain("1 duplicates dropped (--dedup id), 1 empty texts skipped");

    const byHash = join(dir, "by-hash.jsonl");
    before = await embeddedSoFar(running.baseUrl);
    const hashRun = await runCli(["embed", input, "-o", byHash, "--dedup", "hash", "--no-progress"], running.baseUrl);
    expect(hashRun.code, hashRun.stderr).toBe(0);
    expect(readFileSync(byHash, "utf8").trimEnd().split("\n").map((line) => JSON.parse(line).id)).toEqual(["a", "b", "a", "e"]);
    expect((await embeddedSoFar(running.baseUrl)) - before).toBe(4);
  });

  it("CSV column and text lines in, .npy out: a float32 matrix in input order equal to the JSONL vectors, ids beside it", async () => {
    const csv = join(dir, "texts.csv");
    writeFileSync(csv, 'id,title,body\n1,x,"hello, world"\n2,y,"a ""quoted"" text"\n3,z,plain\n');
    const npy = join(dir, "texts.npy");
    const npyRun = await runCli(["embed", csv, "--field", "body", "-o", npy, "--no-progress"], running.baseUrl);
    expect(npyRun.code, npyRun.stderr).toBe(0);
    const bytes = readFileSync(npy);
    expect(bytes.subarray(0, 6).toString("latin1")).toBe("\x93NUMPY");
    const headerLength = bytes.readUInt16LE(8);
    expect((10 + headerLength) % 64).toBe(0);
    expect(bytes.subarray(10, 10 + headerLength).toString("latin1")).toContain("'descr': '<f4', 'fortran_order': False, 'shape': (3, 512)");
    const matrix = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 10 + headerLength, bytes.byteOffset + bytes.byteLength));
    expect(matrix.length).toBe(3 * 512);
    expect(readFileSync(join(dir, "texts.ids.jsonl"), "utf8")).toBe('{"id":"1"}\n{"id":"2"}\n{"id":"3"}\n');

    const textLines = join(dir, "texts.txt");
    writeFileSync(textLines, 'hello, world\na "quoted" text\nplain\n');
    const jsonl = join(dir, "texts.jsonl");
    const textRun = await runCli(["embed", textLines, "-o", jsonl, "--no-progress"], running.baseUrl);
    expect(textRun.code, textRun.stderr).toBe(0);
    const vectors = readFileSync(jsonl, "utf8").trimEnd().split("\n").map((line) => JSON.parse(line) as { id: string; embedding: number[] });
    expect(vectors.map((vector) => vector.id)).toEqual(["1", "2", "3"]);
    expect(Array.from(matrix)).toEqual(vectors.flatMap((vector) => Array.from(Float32Array.from(vector.embedding))));
  });

  it("refuses a checkpoint of another input, and --restart discards it", async () => {
    const input = join(dir, "small.txt");
    writeFileSync(input, "one\ntwo\nthree\n");
    const output = join(dir, "small.jsonl");
    const checkpoint = join(dir, "small.checkpoint");
    writeFileSync(checkpoint, `${JSON.stringify({ version: 1, fingerprint: "another input", batchCount: 1 })}\n`);
    const refused = await runCli(["embed", input, "-o", output, "--checkpoint", checkpoint, "--no-progress"], running.baseUrl);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("belongs to another input or other options; use --restart");
    const restarted = await runCli(["embed", input, "-o", output, "--checkpoint", checkpoint, "--restart", "--no-progress"], running.baseUrl);
    expect(restarted.code, restarted.stderr).toBe(0);
    expect(readFileSync(output, "utf8").trimEnd().split("\n")).toHaveLength(3);
  });
});

describe("sutra --help", () => {
  const commands = [
    [],
    ["serve"],
    ["embed"],
    ["jobs"],
    ["jobs", "submit"],
    ["jobs", "status"],
    ["jobs", "list"],
    ["jobs", "results"],
    ["jobs", "cancel"],
    ["models"],
    ["models", "list"],
    ["models", "download"],
    ["models", "build"],
    ["health"],
    ["bench"],
  ];
  it.each(commands.map((command) => [command.join(" ") || "(top level)", command]))("%s --help prints its usage and exits 0", async (_name, command) => {
    const run = await runCli([...(command as string[]), "--help"], "http://127.0.0.1:1");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`Usage: sutra${(command as string[]).length > 0 ? ` ${(command as string[]).join(" ")}` : ""}`);
    expect(run.stdout).toContain("--help");
  });
});
