import { mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID } from "../../src/models/builtin.js";
import { loadTokenizer } from "../../src/tokenize/index.js";
import { signHs256, TEST_JWT_SECRET } from "../support/jwt.js";
import { startRealService, type RunningService } from "../support/real-service.js";

const RPC = "/sutra.embedder.v1.EmbedderService";

/** A refusal as any transport reports it: the reason of the error table, the message, and the details as strings. */
interface Refusal {
  status: string;
  reason: string;
  message: string;
  details: Record<string, string>;
}

const asStrings = (details: Record<string, unknown>): Record<string, string> =>
  Object.fromEntries(Object.entries(details).map(([key, value]) => [key, String(value)]));

function varint(value: number): number[] {
  const bytes: number[] = [];
  for (; value > 0x7f; value >>>= 7) bytes.push((value & 0x7f) | 0x80);
  bytes.push(value);
  return bytes;
}

/** A length-delimited protobuf field holding `payload` as it is: a string field can carry bytes that are not UTF-8. */
function field(number: number, payload: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(varint((number << 3) | 2)), Buffer.from(varint(payload.byteLength)), payload]);
}

/** One gRPC / gRPC-Web / Connect-streaming envelope (uncompressed message). */
function envelope(message: Uint8Array, flags = 0): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(flags, 0);
  header.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([header, message]);
}

/** `google.rpc.ErrorInfo` from a `grpc-status-details-bin` value or the base64 `value` of a Connect error detail. */
function errorInfoOf(statusBase64: string): { reason: string; metadata: Record<string, string> } {
  const status = fromBinary(StatusSchema, Buffer.from(statusBase64, "base64"));
  const info = anyUnpack(status.details[0], ErrorInfoSchema);
  return { reason: info?.reason ?? "", metadata: { ...info?.metadata } };
}

/** Reads the gRPC status from trailers (or trailers-only headers). */
function grpcRefusal(trailers: Record<string, string | string[] | undefined>): Refusal {
  const details = trailers["grpc-status-details-bin"];
  const info = details === undefined ? { reason: "", metadata: {} } : errorInfoOf(String(details));
  return { status: String(trailers["grpc-status"]), reason: info.reason, message: decodeURIComponent(String(trailers["grpc-message"] ?? "")), details: info.metadata };
}

/** Sends enveloped messages over HTTP/2 as a gRPC client does and returns the status the server ends the call with. */
async function grpcCall(baseUrl: string, path: string, messages: Buffer[]): Promise<Refusal> {
  const session = http2.connect(baseUrl);
  try {
    return await new Promise<Refusal>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
      let headers: http2.IncomingHttpHeaders = {};
      stream.on("response", (received) => (headers = received));
      stream.on("trailers", (trailers) => resolve(grpcRefusal(trailers)));
      stream.on("data", () => undefined);
      stream.on("end", () => {
        if (headers["grpc-status"] !== undefined) resolve(grpcRefusal(headers));
      });
      stream.on("error", reject);
      stream.end(Buffer.concat(messages.map((message) => envelope(message))));
    });
  } finally {
    session.close();
  }
}

/** Sends one gRPC-Web message over HTTP/1.1 and reads the status from the trailer envelope (or the headers). */
async function grpcWebCall(baseUrl: string, path: string, message: Buffer): Promise<Refusal> {
  const response = await fetch(baseUrl + path, { method: "POST", headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" }, body: new Uint8Array(envelope(message)) });
  const body = Buffer.from(await response.arrayBuffer());
  if (response.headers.get("grpc-status") !== null) {
    const headers: Record<string, string> = {};
    response.headers.forEach((value, key) => (headers[key] = value));
    return grpcRefusal(headers);
  }
  for (let offset = 0; offset < body.byteLength; ) {
    const flags = body.readUInt8(offset);
    const length = body.readUInt32BE(offset + 1);
    const payload = body.subarray(offset + 5, offset + 5 + length);
    offset += 5 + length;
    if ((flags & 0x80) === 0) continue;
    const trailers = Object.fromEntries(payload.toString("utf8").split("\r\n").filter(Boolean).map((line) => {
      const colon = line.indexOf(":");
      return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
    }));
    return grpcRefusal(trailers);
  }
  throw new Error(`no trailers in the gRPC-Web answer (HTTP ${response.status})`);
}

/** The JSON body of an answer; an answer that is not JSON (an embedding in protobuf, NDJSON) as `{}`. */
async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return {};
  }
}

/** A Connect unary call with a raw body; the refusal from its JSON error. */
async function connectCall(baseUrl: string, path: string, contentType: string, body: Uint8Array): Promise<Refusal & { httpStatus: number }> {
  const response = await fetch(baseUrl + path, { method: "POST", headers: { "content-type": contentType }, body: new Uint8Array(body) });
  const json = (await readJson(response)) as { code: string; message: string; details?: Array<{ type: string; value: string }> };
  const detail = json.details?.find((item) => item.type === "google.rpc.ErrorInfo");
  const info = detail === undefined ? { reason: "", metadata: {} } : (() => {
    const value = fromBinary(ErrorInfoSchema, Buffer.from(detail.value, "base64"));
    return { reason: value.reason, metadata: { ...value.metadata } };
  })();
  return { httpStatus: response.status, status: json.code, reason: info.reason, message: json.message, details: info.metadata };
}

/** A JSON HTTP route with a raw body; the refusal from its error envelope. */
async function restCall(baseUrl: string, path: string, body: Uint8Array): Promise<Refusal & { httpStatus: number }> {
  const response = await fetch(baseUrl + path, { method: "POST", headers: { "content-type": "application/json" }, body: new Uint8Array(body) });
  const json = (await readJson(response)) as { error?: { code: string; message: string; details: Record<string, unknown> } };
  return {
    httpStatus: response.status,
    status: String(response.status),
    reason: json.error?.code ?? "",
    message: json.error?.message ?? "",
    details: asStrings(json.error?.details ?? {}),
  };
}

const utf8 = (text: string): Buffer => Buffer.from(text, "utf8");

/**
 * The bad texts: a lone surrogate (JSON can spell it as an escape; UTF-8 cannot encode it, so binary
 * protobuf carries the bytes a careless encoder would write for it, ED A0 80) and the bytes FF FE, which
 * are UTF-8 nowhere. Each is sent inside the second text, `a<bad>b`, after a fine first text.
 */
const BAD_TEXTS = [
  { name: "a lone surrogate", json: utf8("\\ud800"), wire: Buffer.from([0xed, 0xa0, 0x80]) },
  { name: "the bytes FF FE", json: Buffer.from([0xff, 0xfe]), wire: Buffer.from([0xff, 0xfe]) },
] as const;

/** A JSON body from a template whose `@BAD@` is replaced by raw bytes (not escaped). */
function jsonBody(template: string, bad: Buffer): Buffer {
  const [before, after] = template.split("@BAD@");
  return Buffer.concat([utf8(before), bad, utf8(after)]);
}

describe("the same ill-formed text is refused the same way on every transport (real service)", () => {
  let running: RunningService;
  const dataDir = mkdtempSync(join(tmpdir(), "sutra-hardening-input-"));
  beforeAll(async () => {
    running = await startRealService({ dataDir });
  });
  afterAll(async () => {
    await running?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  describe.each(BAD_TEXTS)("$name", ({ json, wire }) => {
    const generateRequest = (): Buffer => Buffer.concat([field(1, utf8("fine")), field(1, Buffer.concat([utf8("a"), wire, utf8("b")]))]);
    const transports: Array<[string, () => Promise<Refusal & { httpStatus?: number }>]> = [
      ["REST", () => restCall(running.baseUrl, "/v1/embeddings", jsonBody('{"texts": ["fine", "a@BAD@b"]}', json))],
      ["REST stream route", () => restCall(running.baseUrl, "/v1/embeddings/stream", jsonBody('{"texts": ["fine", "a@BAD@b"]}', json))],
      ["OpenAI dialect", () => restCall(running.baseUrl, "/v1/embeddings", jsonBody('{"input": ["fine", "a@BAD@b"]}', json))],
      ["seed batch route", () => restCall(running.baseUrl, "/v1/embeddings/batch", jsonBody('{"texts": ["fine", "a@BAD@b"]}', json))],
      ["Connect JSON", () => connectCall(running.baseUrl, `${RPC}/GenerateEmbeddings`, "application/json", jsonBody('{"texts": ["fine", "a@BAD@b"]}', json))],
      ["Connect proto", () => connectCall(running.baseUrl, `${RPC}/GenerateEmbeddings`, "application/proto", generateRequest())],
      ["gRPC", () => grpcCall(running.baseUrl, `${RPC}/GenerateEmbeddings`, [generateRequest()])],
      ["gRPC-Web", () => grpcWebCall(running.baseUrl, `${RPC}/GenerateEmbeddings`, generateRequest())],
      ["gRPC GenerateEmbeddingsStream", () => grpcCall(running.baseUrl, `${RPC}/GenerateEmbeddingsStream`, [generateRequest()])],
    ];

    it("answers INVALID_ARGUMENT with the same message and details {field, index: 1} on REST, OpenAI, seed, Connect JSON/proto, gRPC, gRPC-Web, streams", async () => {
      const refusals = new Map<string, Refusal & { httpStatus?: number }>();
      for (const [name, send] of transports) refusals.set(name, await send());
      const rest = refusals.get("REST")!;
      for (const [name, refusal] of refusals) {
        // The OpenAI dialect names its own field, `input`.
        const field = name === "OpenAI dialect" ? "input" : "texts";
        expect(refusal.reason, `${name}: ${refusal.message}`).toBe("INVALID_ARGUMENT");
        expect(refusal.details, name).toMatchObject({ field, index: "1" });
        expect(refusal.message, name).toBe(rest.message.replace("texts", field));
        if (refusal.httpStatus !== undefined) expect(refusal.httpStatus, name).toBe(400);
        if (name.startsWith("gRPC")) expect(refusal.status, name).toBe(String(Code.InvalidArgument));
        if (name.startsWith("Connect")) expect(refusal.status, name).toBe("invalid_argument");
      }
      expect(rest.message).toMatch(/texts\[1\]/);
    });

    it("refuses a StreamEmbeddings chunk and a job document with the same reason and their index", async () => {
      // StreamEmbeddingsRequest {config {}} then {chunk {chunk_id "c1", text <bad>}}: the chunk is message 1 of the stream.
      const chunk = field(2, Buffer.concat([field(1, utf8("c1")), field(2, Buffer.concat([utf8("a"), wire, utf8("b")]))]));
      const stream = await grpcCall(running.baseUrl, `${RPC}/StreamEmbeddings`, [field(1, new Uint8Array(0)), chunk]);
      expect(stream).toMatchObject({ status: String(Code.InvalidArgument), reason: "INVALID_ARGUMENT", details: { field: "chunk.text", index: "1" } });

      const job = await restCall(running.baseUrl, "/v1/jobs", jsonBody('{"documents": [{"text": "fine"}, {"text": "a@BAD@b"}]}', json));
      expect(job).toMatchObject({ httpStatus: 400, reason: "INVALID_ARGUMENT", details: { field: "documents.text", index: "1" } });
      // CreateJobRequest {documents [{text "fine"}, {text <bad>}]} over gRPC.
      const documents = Buffer.concat([field(1, field(2, utf8("fine"))), field(1, field(2, Buffer.concat([utf8("a"), wire, utf8("b")])))]);
      const grpcJob = await grpcCall(running.baseUrl, `${RPC}/CreateJob`, [documents]);
      expect(grpcJob).toMatchObject({ status: String(Code.InvalidArgument), reason: "INVALID_ARGUMENT", details: { field: "documents.text", index: "1" } });
      expect(grpcJob.message).toBe(job.message);
    });
  });

  it("refuses a lone surrogate in a WebSocket chunk with INVALID_ARGUMENT naming the field", async () => {
    const socket = new WebSocket(`${running.baseUrl.replace("http:", "ws:")}/v1/embeddings/ws`);
    const received: Array<{ id: string; type: string; payload: Record<string, any> }> = [];
    const next = (type: string) => expect.poll(() => received.find((message) => message.type === type), { timeout: 10_000 }).toBeDefined();
    socket.on("message", (data) => received.push(JSON.parse(String(data))));
    await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
    try {
      const send = (id: string, action: string, fields: string) => socket.send(`{"id": "${id}", "type": "request", "payload": {"action": "${action}"${fields}}}`);
      send("s1", "stream_embed", "");
      await next("response");
      send("a1", "add_chunk", ', "chunk_id": "bad", "text": "a\\ud800b"');
      await next("error");
      expect(received.find((message) => message.type === "error")).toMatchObject({
        id: "a1",
        payload: { error_code: "INVALID_ARGUMENT", chunk_id: "bad", details: { field: "text" } },
      });
    } finally {
      socket.close();
    }
  });

  it("answers a Connect application/proto request whose body is JSON with 400 invalid_argument, not 500", async () => {
    const refusal = await connectCall(running.baseUrl, `${RPC}/GenerateEmbeddings`, "application/proto", utf8('{"texts": ["hello"]}'));
    expect(refusal).toMatchObject({ httpStatus: 400, status: "invalid_argument", reason: "INVALID_ARGUMENT" });
    expect(refusal.message).toMatch(/protobuf/);
    // A well-formed binary request still embeds.
    const response = await fetch(`${running.baseUrl}${RPC}/GenerateEmbeddings`, { method: "POST", headers: { "content-type": "application/proto" }, body: new Uint8Array(field(1, utf8("hello"))) });
    expect(response.status).toBe(200);
  });

  it("embeds U+FFFD sent as valid UTF-8 (EF BF BD) over gRPC: only bytes that are not UTF-8 are refused", async () => {
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
    const answer = await client.generateEmbeddings({ texts: ["a\ufffdb", "😀 emoji"] });
    expect(answer.embeddings).toHaveLength(2);
  });
});

describe("a 4 MB text is refused or cut without blocking the event loop (real service)", () => {
  let running: RunningService;
  const SENTENCE = "Search engines rank documents by how well they match a query. ";
  const WORDS = SENTENCE.repeat(Math.floor((4_000_000 - 100) / SENTENCE.length));
  const NO_SPACES = "a".repeat(4_000_000 - 100);
  beforeAll(async () => {
    running = await startRealService();
  });
  afterAll(() => running?.stop());

  const bodyOf = (texts: string[], truncate: string) => new TextEncoder().encode(JSON.stringify({ texts, truncate }));
  const send = async (body: ReturnType<typeof bodyOf>) => {
    const response = await fetch(`${running.baseUrl}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body });
    return { status: response.status, body: (await response.json()) as any };
  };
  const embed = (texts: string[], truncate: string) => send(bodyOf(texts, truncate));

  /**
   * Runs `call` twice while sampling the event loop's delay in this process (the server runs in
   * it), and keeps the quieter run: receiving and parsing 4 MB of JSON alone costs tens of ms.
   */
  const timed = async <T>(call: () => Promise<T>): Promise<{ result: T; wallMs: number; maxDelayMs: number }> => {
    const runs: Array<{ result: T; wallMs: number; maxDelayMs: number }> = [];
    for (let run = 0; run < 2; run++) {
      const histogram = monitorEventLoopDelay({ resolution: 10 });
      histogram.enable();
      const started = performance.now();
      const result = await call();
      const wallMs = performance.now() - started;
      histogram.disable();
      runs.push({ result, wallMs, maxDelayMs: histogram.max / 1e6 });
    }
    return runs[0].maxDelayMs <= runs[1].maxDelayMs ? runs[0] : runs[1];
  };

  it.each([["words", WORDS], ["no spaces", NO_SPACES]])("refuses a 4 MB text of %s with truncate none as INPUT_TOO_LONG within 300 ms of event-loop delay", async (_kind, text) => {
    await embed(["warm up"], "end");
    const body = bodyOf(["fine", text], "none");
    const { result, wallMs, maxDelayMs } = await timed(() => send(body));
    expect(result.status).toBe(400);
    expect(result.body.error.code).toBe("INPUT_TOO_LONG");
    expect(result.body.error.details).toMatchObject({ index: 1, limit: 128 });
    expect(result.body.error.details.tokens).toBeGreaterThan(128);
    expect(result.body.error.message).toMatch(/more than 128 tokens/);
    expect(maxDelayMs, `request ${wallMs.toFixed(0)} ms, longest event-loop delay ${maxDelayMs.toFixed(0)} ms`).toBeLessThan(300);
  });

  it.each([["words", WORDS], ["no spaces", NO_SPACES]])("embeds a 4 MB text of %s with truncate end and start within 300 ms of event-loop delay", async (_kind, text) => {
    for (const truncate of ["end", "start"]) {
      const body = bodyOf([text], truncate);
      const { result, wallMs, maxDelayMs } = await timed(() => send(body));
      expect(result.status, JSON.stringify(result.body).slice(0, 300)).toBe(200);
      expect(result.body.metadata.truncated_inputs).toEqual([0]);
      expect(maxDelayMs, `${truncate}: request ${wallMs.toFixed(0)} ms, longest event-loop delay ${maxDelayMs.toFixed(0)} ms`).toBeLessThan(300);
    }
  });

  it("embeds a 4 MB text cut at the end exactly as the prefix that fills the window, and cut at the start as the suffix", async () => {
    const tokenizer = await loadTokenizer(join(BUILTIN_MODELS_DIR, DEFAULT_MODEL_ID), { maxTokens: 128 });
    // The longest prefix ending before a space whose tokens fill the window exactly (each word starts a token).
    const headWords = WORDS.slice(0, 20_000).split(" ");
    const tailWords = WORDS.trimEnd().slice(-20_000).split(" ");
    const boundary = (from: "head" | "tail"): string => {
      for (let count = 1; ; count++) {
        const part = from === "head" ? headWords.slice(0, count).join(" ") : tailWords.slice(-count).join(" ");
        const tokens = tokenizer.encode(part, { truncate: "none" }).ids.length;
        if (tokens === 128) return part;
        if (tokens > 128) throw new Error(`no ${from} of whole words has exactly 128 tokens`);
      }
    };
    const head = boundary("head");
    const tail = boundary("tail");
    const [whole, prefix] = [(await embed([WORDS], "end")).body, (await embed([head], "none")).body];
    expect(whole.usage.prompt_tokens).toBe(128);
    expect(whole.embeddings[0]).toEqual(prefix.embeddings[0]);
    const [wholeTail, suffix] = [(await embed([WORDS.trimEnd()], "start")).body, (await embed([tail], "none")).body];
    expect(wholeTail.embeddings[0]).toEqual(suffix.embeddings[0]);
    expect(whole.embeddings[0]).not.toEqual(wholeTail.embeddings[0]);
  });
});

describe("JWT claims used as identity or role must have their type (real server)", () => {
  let running: RunningService;
  beforeAll(async () => {
    running = await startRealService({ authMode: "jwt", jwtSecret: TEST_JWT_SECRET });
  });
  afterAll(() => running?.stop());

  const BAD_CLAIMS: Array<[string, Record<string, unknown>, RegExp]> = [
    ["sub as an object", { sub: { tenant: "alpha" } }, /"sub" claim must be a non-empty string/],
    ["sub as a number", { sub: 42 }, /"sub" claim must be a non-empty string/],
    ["sub empty", { sub: "" }, /"sub" claim must be a non-empty string/],
    ["role as a number", { role: 1 }, /"role" claim must be a string/],
    ["role as a list", { role: ["admin"] }, /"role" claim must be a string/],
    ["roles as a string", { roles: "admin" }, /"roles" claim must be a list of strings/],
    ["roles with a number", { roles: ["user", 7] }, /"roles" claim must be a list of strings/],
  ];

  it.each(BAD_CLAIMS)("refuses a token with %s: REST 401 and gRPC UNAUTHENTICATED", async (_, claims, message) => {
    const token = await signHs256(claims);
    const response = await fetch(`${running.baseUrl}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ texts: ["hello"] }),
    });
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(response.status).toBe(401);
    expect(body.error.code).toBe("UNAUTHENTICATED");
    expect(body.error.message).toMatch(message);
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
    const error = await client.generateEmbeddings({ texts: ["hello"] }, { headers: { authorization: `Bearer ${token}` } }).then(
      () => undefined,
      (reason: unknown) => ConnectError.from(reason),
    );
    expect(error?.code).toBe(Code.Unauthenticated);
    expect(error?.rawMessage).toMatch(message);
  });

  it("still accepts string sub with role or roles of the right type", async () => {
    for (const claims of [{ sub: "alpha" }, { sub: "alpha", role: "admin" }, { sub: "alpha", roles: ["user", "admin"] }]) {
      const response = await fetch(`${running.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${await signHs256(claims)}` } });
      expect(response.status, JSON.stringify(claims)).toBe(200);
    }
  });
});
