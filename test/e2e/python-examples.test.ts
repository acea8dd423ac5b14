import { execFile } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeClient, type NodeSutraClient } from "../../src/client/node.js";
import { startRealService, type RunningService } from "../support/real-service.js";
import { SYSTEM_PYTHON as PYTHON, pythonCanImport } from "../support/system-python.js";


const EMBED_CLIENT = new URL("../../examples/python/embed_client.py", import.meta.url).pathname;
const STREAM_CLIENT = new URL("../../examples/python/stream_client.py", import.meta.url).pathname;
const TEXTS = ["The quick brown fox jumps over the lazy dog.", "Embeddings map text to vectors.", "Ünïcödé, emoji 🚀 and 日本語 too"];

const pythonHasGrpc = pythonCanImport("grpc, google.protobuf");
const title = pythonHasGrpc
  ? "Python examples (examples/python) against the real service, compared with the TypeScript SDK"
  : "Python examples: skipped because /usr/bin/python3 cannot import grpc (install python3-grpcio and python3-protobuf)";

/** Runs a Python example with `stdin` and parses the JSON it prints. */
function runPython(script: string, args: string[], stdin = ""): Promise<any> {
  return new Promise((resolve, reject) => {
    const child = execFile(PYTHON, [script, ...args], { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) =>
      error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout)),
    );
    child.stdin?.end(stdin);
  });
}

describe.skipIf(!pythonHasGrpc)(title, () => {
  let running: RunningService;
  let client: NodeSutraClient;

  beforeAll(async () => {
    running = await startRealService();
    client = createNodeClient({ baseUrl: running.baseUrl });
  });
  afterAll(async () => {
    client?.close();
    await running?.stop();
  });

  it("embed_client.py (unary GenerateEmbeddings) prints exactly the vectors the SDK gets", async () => {
    const python = await runPython(EMBED_CLIENT, ["--target", `127.0.0.1:${running.port}`, ...TEXTS]);
    const typescript = await client.embed({ texts: TEXTS });
    expect(python.model_id).toBe(typescript.modelInfo?.modelId);
    expect(python.embeddings).toHaveLength(3);
    expect(python.embeddings).toEqual(typescript.embeddings.map((embedding) => embedding.values));
  });

  it("stream_client.py (bidirectional StreamEmbeddings) answers every chunk with the vector the SDK's stream gives", async () => {
    const python = await runPython(STREAM_CLIENT, ["--target", `127.0.0.1:${running.port}`, "--buffer-size", "8"], JSON.stringify(TEXTS));
    const typescript = new Map<string, number[]>();
    for await (const answer of client.streamEmbeddings({ bufferSize: 8 }, TEXTS.map((text, index) => ({ chunkId: `c${index}`, text, position: BigInt(index), isFinal: index === TEXTS.length - 1 })))) {
      typescript.set(answer.chunkId, answer.embedding?.values ?? []);
    }
    const answers = python.answers as Array<{ chunk_id: string; embedding: number[] }>;
    expect(answers.map((answer) => answer.chunk_id).sort()).toEqual(["c0", "c1", "c2"]);
    // Both streams flush the three chunks as one batch of their own, so the vectors match exactly.
    for (const answer of answers) expect(answer.embedding).toEqual(typescript.get(answer.chunk_id));
  });
});
