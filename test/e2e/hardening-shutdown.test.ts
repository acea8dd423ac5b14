import { spawn } from "node:child_process";
import http from "node:http";
import net, { type Socket } from "node:net";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import {
  EmbedderService,
  GenerateEmbeddingsStreamRequestSchema,
  GenerateEmbeddingsStreamResponseSchema,
  StreamEmbeddingsRequestSchema,
  StreamEmbeddingsResponseSchema,
  type GenerateEmbeddingsStreamResponse,
  type StreamEmbeddingsResponse,
} from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { signalGroup, startServeProcess, type ServeProcess } from "../support/serve-process.js";
import { SYSTEM_PYTHON as PYTHON, pythonCanImport } from "../support/system-python.js";


type StreamRequestInit = MessageInitShape<typeof StreamEmbeddingsRequestSchema>;

/** Chunks of 4 are flushed at once; the 2 after them wait in the stream's buffer (max latency 10 s) until the server shuts down. */
const STREAM_CONFIG: StreamRequestInit = { message: { case: "config", value: { bufferSize: 4, maxLatencyMs: 10_000 } } };
const CHUNKS_SENT = 6;
const CHUNKS_FLUSHED = 4;

function chunk(index: number): StreamRequestInit {
  return { message: { case: "chunk", value: { chunkId: `c${index}`, text: `open stream text ${index}`, position: BigInt(index + 1) } } };
}

/** How one open stream ended: its answers by chunk id, and the status it ended with. */
interface StreamEnding {
  client: string;
  answers: Map<string, "embedding" | string>;
  code: number;
  message: string;
  reason?: string;
  retryAfter?: string;
}

/** A grpc-js status with the ErrorInfo reason and retry-after it carries. */
function statusOf(status: grpc.StatusObject): { code: number; message: string; reason?: string; retryAfter?: string } {
  const details = status.metadata.get("grpc-status-details-bin")[0];
  const info = details === undefined ? undefined : anyUnpack(fromBinary(StatusSchema, details as Buffer).details[0], ErrorInfoSchema);
  return { code: status.code, message: status.details, reason: info?.reason, retryAfter: status.metadata.get("retry-after")[0] as string | undefined };
}

function answerKind(answer: StreamEmbeddingsResponse): "embedding" | string {
  return answer.error === undefined ? "embedding" : answer.error.code;
}

/** A StreamEmbeddings stream through @grpc/grpc-js that sends the config and 6 chunks and never half-closes. */
function grpcJsStream(port: number): { flushed: Promise<void>; ended: Promise<StreamEnding>; close(): void } {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(
    "/sutra.embedder.v1.EmbedderService/StreamEmbeddings",
    (message: Uint8Array) => Buffer.from(message),
    (bytes: Buffer) => fromBinary(StreamEmbeddingsResponseSchema, bytes),
  );
  const answers = new Map<string, string>();
  let onFlushed!: () => void;
  const flushed = new Promise<void>((resolve) => (onFlushed = resolve));
  call.on("data", (answer: StreamEmbeddingsResponse) => {
    answers.set(answer.chunkId, answerKind(answer));
    if (answers.size === CHUNKS_FLUSHED) onFlushed();
  });
  const ended = new Promise<StreamEnding>((resolve) => {
    call.on("error", () => undefined);
    call.on("status", (status: grpc.StatusObject) => resolve({ client: "@grpc/grpc-js", answers, ...statusOf(status) }));
  });
  for (const request of [STREAM_CONFIG, ...Array.from({ length: CHUNKS_SENT }, (_, index) => chunk(index))]) {
    call.write(toBinary(StreamEmbeddingsRequestSchema, create(StreamEmbeddingsRequestSchema, request)));
  }
  return { flushed, ended, close: () => client.close() };
}

/** The same stream through connect-node (gRPC or Connect protocol over HTTP/2); its requests stay open until `close`. */
function connectStream(name: string, transport: Transport): { flushed: Promise<void>; ended: Promise<StreamEnding>; close(): void } {
  const client = createClient(EmbedderService, transport);
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  async function* requests(): AsyncGenerator<StreamRequestInit> {
    yield STREAM_CONFIG;
    for (let index = 0; index < CHUNKS_SENT; index++) yield chunk(index);
    await held;
  }
  const answers = new Map<string, string>();
  let onFlushed!: () => void;
  const flushed = new Promise<void>((resolve) => (onFlushed = resolve));
  const ended = (async (): Promise<StreamEnding> => {
    try {
      for await (const answer of client.streamEmbeddings(requests())) {
        answers.set(answer.chunkId, answerKind(answer));
        if (answers.size === CHUNKS_FLUSHED) onFlushed();
      }
      return { client: name, answers, code: 0, message: "OK" };
    } catch (reason) {
      const error = ConnectError.from(reason);
      return {
        client: name,
        answers,
        code: error.code,
        message: error.rawMessage,
        reason: error.findDetails(ErrorInfoSchema)[0]?.reason,
        retryAfter: error.metadata.get("retry-after") ?? undefined,
      };
    }
  })();
  return { flushed, ended, close: release };
}

const pythonHasGrpc = pythonCanImport("grpc");

/**
 * The same stream through Python grpcio (no generated code: the messages
 * travel as hex, encoded and decoded here); it holds its side open until the
 * call ends.
 */
const GRPCIO_STREAM = `
import json, sys, threading, grpc
requests = [bytes.fromhex(word) for word in sys.stdin.readline().split()]
done = threading.Event()
def send():
    yield from requests
    done.wait(120)
call = grpc.insecure_channel(sys.argv[1]).stream_stream("/sutra.embedder.v1.EmbedderService/StreamEmbeddings")
try:
    for answer in call(send()):
        print(json.dumps({"answer": answer.hex()}), flush=True)
    print(json.dumps({"code": 0, "details": "OK"}), flush=True)
except grpc.RpcError as error:
    trailers = dict(error.trailing_metadata() or ())
    print(json.dumps({"code": error.code().value[0], "details": error.details(), "retryAfter": trailers.get("retry-after"), "statusDetails": trailers.get("grpc-status-details-bin", b"").hex()}), flush=True)
done.set()
`;

function grpcioStream(port: number): { flushed: Promise<void>; ended: Promise<StreamEnding>; close(): void } {
  const child = spawn(PYTHON, ["-c", GRPCIO_STREAM, `127.0.0.1:${port}`], { stdio: ["pipe", "pipe", "inherit"] });
  const requests = [STREAM_CONFIG, ...Array.from({ length: CHUNKS_SENT }, (_, index) => chunk(index))];
  child.stdin.end(`${requests.map((request) => Buffer.from(toBinary(StreamEmbeddingsRequestSchema, create(StreamEmbeddingsRequestSchema, request))).toString("hex")).join(" ")}\n`);
  const answers = new Map<string, string>();
  let onFlushed!: () => void;
  const flushed = new Promise<void>((resolve) => (onFlushed = resolve));
  const ended = new Promise<StreamEnding>((resolve) => {
    createInterface({ input: child.stdout }).on("line", (line) => {
      const record = JSON.parse(line) as { answer?: string; code: number; details: string; retryAfter?: string; statusDetails?: string };
      if (record.answer !== undefined) {
        const answer = fromBinary(StreamEmbeddingsResponseSchema, Buffer.from(record.answer, "hex"));
        answers.set(answer.chunkId, answerKind(answer));
        if (answers.size === CHUNKS_FLUSHED) onFlushed();
        return;
      }
      const details = record.statusDetails ? fromBinary(StatusSchema, Buffer.from(record.statusDetails, "hex")).details[0] : undefined;
      resolve({
        client: "Python grpcio",
        answers,
        code: record.code,
        message: record.details,
        reason: details === undefined ? undefined : anyUnpack(details, ErrorInfoSchema)?.reason,
        retryAfter: record.retryAfter ?? undefined,
      });
    });
  });
  return { flushed, ended, close: () => child.kill() };
}

/**
 * A GenerateEmbeddingsStream through @grpc/grpc-js that stops reading at its
 * first answer (`first` resolves then) until `resume()`, so the server holds
 * the rest of its answers in its buffers.
 */
function pausedGenerateStream(port: number, texts: string[]): { first: Promise<void>; resume(): void; ended: Promise<{ answers: number } & ReturnType<typeof statusOf>>; close(): void } {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = client.makeServerStreamRequest(
    "/sutra.embedder.v1.EmbedderService/GenerateEmbeddingsStream",
    (message: Uint8Array) => Buffer.from(message),
    (bytes: Buffer) => fromBinary(GenerateEmbeddingsStreamResponseSchema, bytes),
    toBinary(GenerateEmbeddingsStreamRequestSchema, create(GenerateEmbeddingsStreamRequestSchema, { texts })),
  );
  let answers = 0;
  let onFirst!: () => void;
  const first = new Promise<void>((resolve) => (onFirst = resolve));
  call.on("data", (_answer: GenerateEmbeddingsStreamResponse) => {
    answers += 1;
    if (answers === 1) {
      call.pause();
      onFirst();
    }
  });
  call.on("error", () => undefined);
  const ended = new Promise<{ answers: number } & ReturnType<typeof statusOf>>((resolve) => {
    call.on("status", (status: grpc.StatusObject) => resolve({ answers, ...statusOf(status) }));
  });
  return { first, resume: () => call.resume(), ended, close: () => client.close() };
}

let server: ServeProcess | undefined;
afterEach(() => {
  if (server !== undefined) signalGroup(server.child, "SIGKILL");
  server = undefined;
});

describe("SIGTERM with open streams (sutra serve in a child process)", () => {
  it("open StreamEmbeddings streams answer what they hold, then end with UNAVAILABLE / SHUTTING_DOWN and retry-after; an in-flight GenerateEmbeddingsStream ends with a status", async () => {
    server = startServeProcess();
    const port = (await server.waitFor("listening")).address!.port;
    const baseUrl = `http://127.0.0.1:${port}`;
    await server.waitFor("default model loaded");

    const streams = [
      grpcJsStream(port),
      connectStream("connect-node gRPC", createGrpcTransport({ baseUrl })),
      connectStream("connect-node Connect", createConnectTransport({ baseUrl, httpVersion: "2" })),
      ...(pythonHasGrpc ? [grpcioStream(port)] : []),
    ];
    try {
      await Promise.all(streams.map((stream) => stream.flushed));
      const texts = Array.from({ length: 256 }, (_, index) => `generate stream text ${index} ${"lorem ipsum dolor sit amet ".repeat(2)}`);
      const generate = pausedGenerateStream(port, texts);
      await generate.first;
      signalGroup(server.child, "SIGTERM");
      // The client takes the rest of its answers only after the pipeline has drained.
      await server.waitFor("draining");
      await sleep(1500);
      generate.resume();

      const endings = await Promise.all(streams.map((stream) => stream.ended));
      const held = Array.from({ length: CHUNKS_SENT }, (_, index) => [`c${index}`, "embedding"] as const);
      expect(endings.map((ending) => ({ ...ending, answers: [...ending.answers].sort(), message: ending.code === Code.Unavailable ? undefined : ending.message }))).toEqual(
        endings.map((ending) => ({ client: ending.client, answers: held, code: Code.Unavailable, message: undefined, reason: "SHUTTING_DOWN", retryAfter: "1" })),
      );
      const generated = await generate.ended;
      // Its texts were all accepted before the signal: it delivers every answer and ends with OK.
      expect({ ...generated, message: undefined }).toEqual({ answers: texts.length, code: grpc.status.OK, message: undefined, reason: undefined, retryAfter: undefined });
      generate.close();

      const exit = await server.exited;
      expect(exit.code).toBe(0);
      expect(server.lines.some((line) => line.msg === "stopped")).toBe(true);
    } finally {
      for (const stream of streams) stream.close();
    }
  }, 120_000);
});

/**
 * What became of one REST request of the keep-alive load: "answered" (200),
 * "refused SHUTTING_DOWN" (503 with `connection: close`), "closed before send"
 * (the server had closed the connection cleanly, with a FIN or an answer
 * carrying `connection: close`, before the request was written: a client may
 * retry it), "connection refused" (a new connection after the server stopped
 * listening), or anything else: "reset ..." for a request written on a
 * connection the server had not closed, which must not happen.
 */
type LoadOutcome = string;

/** Per socket: whether the server had closed it cleanly, as the client saw it. */
const closedCleanly = new WeakMap<Socket, { fin: boolean; closeAnnounced: boolean }>();

/** One POST /v1/embeddings on `agent`; tells how it ended. */
function postEmbeddings(agent: http.Agent, port: number, body: string): Promise<LoadOutcome> {
  return new Promise((resolve) => {
    let priorClose = false;
    const request = http.request({ host: "127.0.0.1", port, path: "/v1/embeddings", method: "POST", agent, headers: { "content-type": "application/json" } }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", (error) => resolve(priorClose ? "closed before send" : `reset in answer ${error.message}`));
      response.on("end", () => {
        if (response.headers.connection === "close") closedCleanly.get(response.socket)!.closeAnnounced = true;
        const text = Buffer.concat(chunks).toString("utf8");
        if (response.statusCode === 200 && (JSON.parse(text) as { embeddings: unknown[] }).embeddings.length > 0) resolve("answered");
        else if (response.statusCode === 503 && text.includes('"SHUTTING_DOWN"') && response.headers.connection === "close") resolve("refused SHUTTING_DOWN");
        else resolve(`status ${response.statusCode} connection ${response.headers.connection}: ${text.slice(0, 100)}`);
      });
    });
    request.on("socket", (socket: Socket) => {
      let state = closedCleanly.get(socket);
      if (state === undefined) {
        const fresh = { fin: false, closeAnnounced: false };
        closedCleanly.set(socket, fresh);
        socket.on("end", () => (fresh.fin = true));
        state = fresh;
      }
      priorClose = state.fin || state.closeAnnounced;
    });
    request.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNREFUSED") resolve("connection refused");
      else if (priorClose) resolve("closed before send");
      else if (error.code === "ECONNRESET" || error.code === "EPIPE") resolve(`reset ${error.message}`);
      else resolve(`error ${error.code ?? error.message}`);
    });
    request.end(body);
  });
}

/**
 * A keep-alive connection that got one answer (or, with `silent`, one that
 * never sent a byte) and then stays idle; `ended` tells how the server closed
 * it: "fin" when cleanly, else the error.
 */
async function idleConnection(port: number, silent = false): Promise<{ ended: Promise<string> }> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const opened = net.connect(port, "127.0.0.1", () => resolve(opened)).once("error", reject);
  });
  const ended = new Promise<string>((resolve) => {
    socket.on("error", (error: NodeJS.ErrnoException) => resolve(`error ${error.code}`));
    socket.on("end", () => resolve("fin"));
  });
  if (!silent) {
    let received = "";
    socket.write("GET /v1/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    await new Promise<void>((resolve) => {
      socket.on("data", (chunk: Buffer) => {
        received += chunk.toString("latin1");
        const head = received.indexOf("\r\n\r\n");
        const length = Number(/content-length: (\d+)/i.exec(received)?.[1]);
        if (head >= 0 && received.length - head - 4 >= length) resolve();
      });
    });
  }
  return { ended };
}

describe("SIGTERM under keep-alive HTTP/1.1 load (sutra serve in a child process)", () => {
  it("answers every request it reads (200 or 503 SHUTTING_DOWN with connection: close), resets no connection, and exits 0 within 10 s", async () => {
    server = startServeProcess();
    const port = (await server.waitFor("listening")).address!.port;
    await server.waitFor("default model loaded");

    const body = JSON.stringify({ texts: Array.from({ length: 16 }, (_, index) => `load text ${index} ${"the quick brown fox jumps over the lazy dog ".repeat(4)}`) });
    const agents = Array.from({ length: 16 }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    const outcomes: Array<{ outcome: LoadOutcome; afterSignal: boolean }> = [];
    let signalledAt = Number.POSITIVE_INFINITY;
    // Requests keep coming for 3 s after the signal, as from clients that have not noticed yet.
    const loop = async (agent: http.Agent): Promise<void> => {
      while (performance.now() < signalledAt + 3000) {
        const sentAt = performance.now();
        const outcome = await postEmbeddings(agent, port, body);
        outcomes.push({ outcome, afterSignal: sentAt >= signalledAt });
        if (outcome === "connection refused") await sleep(50);
      }
    };
    const idle = [await idleConnection(port), await idleConnection(port), await idleConnection(port, true)];
    const loops = agents.map(loop);
    try {
      while (outcomes.filter((item) => item.outcome === "answered").length < 32) await sleep(20);
      signalledAt = performance.now();
      signalGroup(server.child, "SIGTERM");
      await Promise.all(loops);
      const exit = await server.exited;
      expect(await Promise.all(idle.map((connection) => connection.ended))).toEqual(["fin", "fin", "fin"]);

      const counts: Record<string, number> = {};
      for (const { outcome, afterSignal } of outcomes) {
        const key = `${afterSignal ? "after" : "before"} SIGTERM: ${outcome}`;
        counts[key] = (counts[key] ?? 0) + 1;
      }
      const unexpected = outcomes.filter(({ outcome }) => !["answered", "refused SHUTTING_DOWN", "closed before send", "connection refused"].includes(outcome));
      expect(unexpected, JSON.stringify(counts)).toEqual([]);
      expect(outcomes.some((item) => item.afterSignal && item.outcome === "refused SHUTTING_DOWN"), JSON.stringify(counts)).toBe(true);
      expect({ code: exit.code, stopped: server.lines.some((line) => line.msg === "stopped") }).toEqual({ code: 0, stopped: true });
      expect(exit.at - signalledAt).toBeLessThan(10_000);
      console.log(`keep-alive load: ${JSON.stringify(counts)}; SIGTERM to exit ${Math.round(exit.at - signalledAt)} ms`);
    } finally {
      signalledAt = Math.min(signalledAt, performance.now() - 3000);
      for (const agent of agents) agent.destroy();
    }
  }, 120_000);
});
