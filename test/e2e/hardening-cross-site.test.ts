import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { createAccessControl } from "../../src/admission/access-control.js";
import { createRateLimiter } from "../../src/admission/rate-limit.js";
import { createServer, type ServerDeps } from "../../src/api/create-server.js";
import { createAuthenticator } from "../../src/auth/create-authenticator.js";
import { EmbedderError } from "../../src/domain/errors.js";
import type { CreateJobInput, JobService } from "../../src/domain/jobs.js";
import type { ModelDownloadStatus } from "../../src/domain/types.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { requestHttp1 } from "../support/http1-request.js";
import { createFakeEmbedder, DEFAULT_SERVE_CONNECTION_LIMITS, startTestServer, type FakeEmbedder, type TestServer } from "./transport-fixtures.js";

/**
 * Cross-site requests and DNS rebinding: content types a JSON route does not
 * take (415), Host names the server does not answer for with auth none (421),
 * and state-changing requests from a foreign browser origin (403), on REST,
 * gRPC and WebSocket upgrades.
 */

const FOREIGN_HOST = "rebind.evil.example";
const FOREIGN_ORIGIN = "https://evil.example";
const API_KEY = "sk-cross-site-0123456789";
const EMBED_BODY = JSON.stringify({ texts: ["cross-site"] });
const GRPC_GENERATE = "/sutra.embedder.v1.EmbedderService/GenerateEmbeddings";
const GRPC_HEALTH_CHECK = "/grpc.health.v1.Health/Check";

/** The server under test, with the side effects the tests look for. */
interface Harness {
  server: TestServer;
  embedder: FakeEmbedder;
  downloads: string[];
  createdJobs: CreateJobInput[];
}

let running: Harness | undefined;

afterEach(async () => {
  await running?.server.close();
  running = undefined;
});

/** A fixture server whose embedder counts downloads and whose job service counts created jobs. */
async function start(overrides: Partial<ServerDeps> = {}): Promise<Harness> {
  const downloads: string[] = [];
  const createdJobs: CreateJobInput[] = [];
  const embedder = Object.assign(createFakeEmbedder(), {
    async downloadModel(modelId: string): Promise<ModelDownloadStatus> {
      downloads.push(modelId);
      return { modelId, status: "downloading", progress: 0, etaSeconds: 1, bytesDownloaded: 0, bytesTotal: 10, message: "started" };
    },
  });
  const refuse = (): never => {
    throw new EmbedderError("JOB_NOT_FOUND", "no jobs here");
  };
  const jobs: JobService = {
    async create(input) {
      createdJobs.push(input);
      throw new EmbedderError("OVERLOADED", "the test's job service takes no jobs", { retryAfterMs: 1000 });
    },
    get: refuse,
    list: refuse,
    cancel: refuse,
    results: refuse,
  };
  const server = await startTestServer({ embedder, jobs, ...overrides });
  running = { server, embedder, downloads, createdJobs };
  return running;
}

function apiKeyAccess(): NonNullable<ServerDeps["access"]> {
  return createAccessControl({
    authenticator: createAuthenticator({ mode: "api-key", apiKeys: API_KEY }),
    rateLimiter: createRateLimiter({ requestsPerMinute: 0, tokensPerMinute: 0, burst: 0 }),
  });
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The REST error envelope's reason, when the answer is one. */
  code?: string;
}

/** One HTTP/1.1 request with node:http, so Host can be anything. */
async function request(port: number, options: Parameters<typeof requestHttp1>[1]): Promise<Answer> {
  const answer = await requestHttp1(port, options);
  return { ...answer, code: errorCode(answer.text) };
}

/** Raw bytes on a fresh connection, for requests node:http will not send (no Host, a malformed Host). */
function rawRequest(port: number, text: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.end(text));
    let received = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => (received += chunk));
    socket.on("error", reject);
    socket.on("close", () => {
      const [head, ...rest] = received.split("\r\n\r\n");
      const body = rest.join("\r\n\r\n");
      resolve({ status: Number(head.split(" ")[1] ?? 0), headers: {}, text: body, code: errorCode(body) });
    });
  });
}

function errorCode(text: string): string | undefined {
  try {
    return (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

/** A unary gRPC call with grpc-js, over HTTP/2 with `:authority` set to `authority`. */
function grpcCall(port: number, path: string, authority: string, metadata = new grpc.Metadata()): Promise<grpc.ServiceError | undefined> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { "grpc.default_authority": authority });
  return new Promise<grpc.ServiceError | undefined>((resolve) => {
    client.makeUnaryRequest(path, (bytes: Buffer) => bytes, (bytes: Buffer) => bytes, Buffer.alloc(0), metadata, (error) => resolve(error ?? undefined));
  }).finally(() => client.close());
}

/** The ErrorInfo reason in a gRPC error's status details. */
function grpcReason(error: grpc.ServiceError | undefined): string | undefined {
  const [bytes] = (error?.metadata.get("grpc-status-details-bin") ?? []) as Buffer[];
  if (bytes === undefined) return undefined;
  const status = fromBinary(StatusSchema, bytes);
  return status.details.map((detail) => anyUnpack(detail, ErrorInfoSchema)).find((info) => info !== undefined)?.reason;
}

/** Opens a WebSocket to the stream route; resolves with 101 when it opened, else the refusal's status and reason. */
function openWebSocket(port: number, headers: Record<string, string> = {}): Promise<{ status: number; code?: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/embeddings/ws`, { headers });
    socket.once("open", () => {
      socket.close();
      resolve({ status: 101 });
    });
    socket.once("unexpected-response", (_request, response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (text += chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, code: errorCode(text) }));
    });
    socket.once("error", reject);
  });
}

describe("content types a JSON route does not take: 415 before anything starts", () => {
  it("POST /v1/models/x/download, /v1/jobs and /v1/embeddings with text/plain and a JSON body: 415, no download, job or embedding", async () => {
    const { server, embedder, downloads, createdJobs } = await start();
    const plain = { "content-type": "text/plain" };
    const download = await request(server.port, { method: "POST", path: "/v1/models/x/download", headers: plain, body: "{}" });
    const job = await request(server.port, { method: "POST", path: "/v1/jobs", headers: plain, body: JSON.stringify({ documents: [{ id: "a", text: "hello" }] }) });
    const embed = await request(server.port, { method: "POST", path: "/v1/embeddings", headers: plain, body: EMBED_BODY });
    for (const answer of [download, job, embed]) {
      expect(answer.status, answer.text.slice(0, 200)).toBe(415);
      expect(answer.code).toBe("UNSUPPORTED_MEDIA_TYPE");
    }
    expect(downloads).toEqual([]);
    expect(createdJobs).toEqual([]);
    expect(embedder.requests).toEqual([]);
  });

  it("form and multipart bodies on the REST, OpenAI and seed routes are 415; application/json with a charset is served", async () => {
    const { server, embedder } = await start();
    const refused = [
      { path: "/v1/embeddings", type: "application/x-www-form-urlencoded", body: EMBED_BODY },
      { path: "/v1/embeddings", type: "multipart/form-data; boundary=x", body: `--x\r\ncontent-disposition: form-data; name="a"\r\n\r\n${EMBED_BODY}\r\n--x--` },
      { path: "/v1/embeddings", type: "text/plain", body: JSON.stringify({ input: "openai dialect", model: "text-embedding-3-small" }) },
      { path: "/v1/embeddings/batch", type: "text/plain", body: EMBED_BODY },
      { path: "/api/v1/embeddings/batch", type: "application/x-www-form-urlencoded", body: EMBED_BODY },
      { path: "/v1/embeddings/stream", type: "text/plain", body: EMBED_BODY },
      { path: "/v1/embeddings", type: "application/jsonp", body: EMBED_BODY },
    ];
    for (const { path, type, body } of refused) {
      const answer = await request(server.port, { method: "POST", path, headers: { "content-type": type }, body });
      expect(answer.status, `${path} ${type}`).toBe(415);
      expect(answer.code).toBe("UNSUPPORTED_MEDIA_TYPE");
    }
    expect(embedder.requests).toEqual([]);
    const served = await request(server.port, { method: "POST", path: "/v1/embeddings", headers: { "content-type": "Application/JSON; charset=UTF-8" }, body: EMBED_BODY });
    expect(served.status, served.text.slice(0, 200)).toBe(200);
    expect(embedder.requests).toHaveLength(1);
  });

  it("a POST without a content type is served when its body is empty and refused (415) when it has one", async () => {
    const { server, downloads, embedder } = await start();
    const empty = await request(server.port, { method: "POST", path: "/v1/models/x/download" });
    expect(empty.status, empty.text.slice(0, 200)).toBe(200);
    expect(downloads).toEqual(["x"]);
    const socket = await rawRequest(
      server.port,
      `POST /v1/embeddings HTTP/1.1\r\nhost: 127.0.0.1:${server.port}\r\ncontent-length: ${EMBED_BODY.length}\r\nconnection: close\r\n\r\n${EMBED_BODY}`,
    );
    expect(socket.status, socket.text.slice(0, 200)).toBe(415);
    expect(socket.code).toBe("UNSUPPORTED_MEDIA_TYPE");
    expect(embedder.requests).toEqual([]);
    // An rpc path answers an unknown content type with 415 too (connect-node dispatches by content type).
    const rpc = await request(server.port, { method: "POST", path: GRPC_GENERATE, headers: { "content-type": "text/plain" }, body: EMBED_BODY });
    expect(rpc.status).toBe(415);
    expect(embedder.requests).toEqual([]);
  });
});

describe("Host names with auth none: 421 for a name that is neither loopback nor allowed", () => {
  it("REST GET and POST, /metrics and health with Host rebind.evil.example: 421, nothing embedded", async () => {
    const { server, embedder } = await start();
    const host = { host: FOREIGN_HOST };
    const answers = [
      await request(server.port, { path: "/v1/models", headers: host }),
      await request(server.port, { path: "/metrics", headers: host }),
      await request(server.port, { path: "/v1/health", headers: { host: `${FOREIGN_HOST}:${server.port}` } }),
      await request(server.port, { method: "POST", path: "/v1/embeddings", headers: { ...host, "content-type": "application/json" }, body: EMBED_BODY }),
    ];
    for (const answer of answers) {
      expect(answer.status, answer.text.slice(0, 200)).toBe(421);
      expect(answer.code).toBe("MISDIRECTED_REQUEST");
      expect(answer.headers["x-request-id"]).toBeTruthy();
    }
    expect(embedder.requests).toEqual([]);
    for (const loopback of ["localhost", `LOCALHOST:${server.port}`, "app.localhost", "127.0.0.1", `127.8.9.10:${server.port}`, `[::1]:${server.port}`]) {
      const answer = await request(server.port, { path: "/v1/models", headers: { host: loopback } });
      expect(answer.status, loopback).toBe(200);
    }
  });

  it("gRPC over HTTP/2 with :authority rebind.evil.example: PERMISSION_DENIED with reason MISDIRECTED_REQUEST, health included", async () => {
    const { server, embedder } = await start();
    for (const path of [GRPC_GENERATE, GRPC_HEALTH_CHECK]) {
      const error = await grpcCall(server.port, path, FOREIGN_HOST);
      expect(error?.code, path).toBe(grpc.status.PERMISSION_DENIED);
      expect(grpcReason(error)).toBe("MISDIRECTED_REQUEST");
    }
    expect(embedder.requests).toEqual([]);
    expect(await grpcCall(server.port, GRPC_HEALTH_CHECK, `localhost:${server.port}`)).toBeUndefined();
  });

  it("a WebSocket upgrade with Host rebind.evil.example: 421; with a loopback Host it opens", async () => {
    const { server } = await start();
    expect(await openWebSocket(server.port, { host: FOREIGN_HOST })).toEqual({ status: 421, code: "MISDIRECTED_REQUEST" });
    expect(await openWebSocket(server.port)).toEqual({ status: 101 });
  });

  it("allowedHosts ['embed.internal'] serves that name (any case, any port) and still refuses others", async () => {
    const { server } = await start({ origins: { allowedHosts: ["embed.internal"] } });
    for (const host of ["embed.internal", "EMBED.Internal:8443"]) {
      expect((await request(server.port, { path: "/v1/models", headers: { host } })).status, host).toBe(200);
    }
    expect(await grpcCall(server.port, GRPC_HEALTH_CHECK, "embed.internal:443")).toBeUndefined();
    expect((await request(server.port, { path: "/v1/models", headers: { host: "embed.internal.evil.example" } })).status).toBe(421);
    expect((await request(server.port, { path: "/v1/models", headers: { host: FOREIGN_HOST } })).status).toBe(421);
  });

  it("an allowedHosts entry with a port, or a bare IPv6 address, allows that host name; an unreadable entry stops start-up", async () => {
    const { server } = await start({ origins: { allowedHosts: ["Embed.Internal:8080", "fd00::7"] } });
    expect((await request(server.port, { path: "/v1/models", headers: { host: "embed.internal" } })).status).toBe(200);
    expect((await request(server.port, { path: "/v1/models", headers: { host: `[fd00::7]:${server.port}` } })).status).toBe(200);
    expect((await request(server.port, { path: "/v1/models", headers: { host: FOREIGN_HOST } })).status).toBe(421);
    const silent = pino({ level: "silent" });
    const deps = { embedder: createFakeEmbedder(), logger: silent, limits: { maxBodyBytes: 1024 }, connectionLimits: DEFAULT_SERVE_CONNECTION_LIMITS };
    expect(() => createServer({ ...deps, origins: { allowedHosts: ["http://embed.internal"] } })).toThrow(/SUTRA_ALLOWED_HOSTS/);
    expect(() => createServer({ ...deps, origins: { corsOrigins: ["*"] } })).toThrow(/SUTRA_CORS_ORIGINS/);
  });

  it("with auth api-key the Host is not checked: the key is the defence", async () => {
    const { server, embedder } = await start({ access: apiKeyAccess() });
    const embed = await request(server.port, {
      method: "POST",
      path: "/v1/embeddings",
      headers: { host: FOREIGN_HOST, "content-type": "application/json", "x-api-key": API_KEY },
      body: EMBED_BODY,
    });
    expect(embed.status, embed.text.slice(0, 200)).toBe(200);
    expect(embedder.requests).toHaveLength(1);
    const metadata = new grpc.Metadata();
    metadata.set("x-api-key", API_KEY);
    expect(await grpcCall(server.port, GRPC_HEALTH_CHECK, FOREIGN_HOST, metadata)).toBeUndefined();
    expect((await openWebSocket(server.port, { host: FOREIGN_HOST, "x-api-key": API_KEY })).status).toBe(101);
    // Without the key the foreign Host gets the authentication refusal, not 421.
    expect((await request(server.port, { path: "/v1/models", headers: { host: FOREIGN_HOST } })).status).toBe(401);
  });

  it("a request without Host or with a malformed one is 421 on REST and rpc paths, in every auth mode, and the server keeps serving", async () => {
    for (const overrides of [{}, { access: apiKeyAccess() }]) {
      const { server } = await start(overrides);
      const requests = [
        `GET /v1/models HTTP/1.0\r\n\r\n`,
        `POST ${GRPC_GENERATE} HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}`,
        `POST ${GRPC_GENERATE} HTTP/1.1\r\nhost: a b\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`,
        `POST ${GRPC_GENERATE} HTTP/1.1\r\nhost: [::1\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`,
      ];
      for (const text of requests) {
        const answer = await rawRequest(server.port, text);
        expect(answer.status, text.split("\r\n", 1)[0]).toBe(421);
        expect(answer.code).toBe("MISDIRECTED_REQUEST");
      }
      expect((await request(server.port, { path: "/v1/health", headers: { "x-api-key": API_KEY } })).status).toBe(200);
      await server.close();
      running = undefined;
    }
  });
});

describe("browser origins: a state-changing request from a foreign Origin is 403", () => {
  it("POST /v1/embeddings with Origin https://evil.example: 403, nothing embedded; GET /v1/models from it is served", async () => {
    const { server, embedder } = await start();
    const json = { "content-type": "application/json" };
    const foreign = await request(server.port, { method: "POST", path: "/v1/embeddings", headers: { ...json, origin: FOREIGN_ORIGIN }, body: EMBED_BODY });
    expect(foreign.status, foreign.text.slice(0, 200)).toBe(403);
    expect(foreign.code).toBe("ORIGIN_NOT_ALLOWED");
    const nullOrigin = await request(server.port, { method: "POST", path: "/v1/embeddings/batch", headers: { ...json, origin: "null" }, body: EMBED_BODY });
    expect(nullOrigin.status).toBe(403);
    expect(nullOrigin.code).toBe("ORIGIN_NOT_ALLOWED");
    const connect = await request(server.port, { method: "POST", path: GRPC_GENERATE, headers: { ...json, origin: FOREIGN_ORIGIN }, body: EMBED_BODY });
    expect(connect.status).toBe(403);
    expect(JSON.parse(connect.text)).toMatchObject({ code: "permission_denied" });
    expect(embedder.requests).toEqual([]);
    expect((await request(server.port, { path: "/v1/models", headers: { origin: FOREIGN_ORIGIN } })).status).toBe(200);
    const sameOrigin = await request(server.port, { method: "POST", path: "/v1/embeddings", headers: { ...json, origin: `http://127.0.0.1:${server.port}` }, body: EMBED_BODY });
    expect(sameOrigin.status, sameOrigin.text.slice(0, 200)).toBe(200);
    const noOrigin = await request(server.port, { method: "POST", path: "/v1/embeddings", headers: json, body: EMBED_BODY });
    expect(noOrigin.status).toBe(200);
    expect(embedder.requests).toHaveLength(2);
  });

  it("an origin listed in corsOrigins is served; other origins stay refused", async () => {
    const { server, embedder } = await start({ origins: { corsOrigins: ["https://app.example/"] } });
    const send = (origin: string) =>
      request(server.port, { method: "POST", path: "/v1/embeddings", headers: { "content-type": "application/json", origin }, body: EMBED_BODY });
    expect((await send("https://app.example")).status).toBe(200);
    expect((await send("https://APP.example:443")).status).toBe(200);
    expect((await send("http://app.example")).status).toBe(403);
    expect((await send(FOREIGN_ORIGIN)).status).toBe(403);
    expect(embedder.requests).toHaveLength(2);
  });

  it("a WebSocket upgrade with a foreign Origin: 403; same origin and without Origin it opens", async () => {
    const { server } = await start();
    expect(await openWebSocket(server.port, { origin: FOREIGN_ORIGIN })).toEqual({ status: 403, code: "ORIGIN_NOT_ALLOWED" });
    expect(await openWebSocket(server.port, { origin: `http://127.0.0.1:${server.port}` })).toEqual({ status: 101 });
    expect(await openWebSocket(server.port)).toEqual({ status: 101 });
  });
});

const NGINX = "/usr/sbin/nginx";
const NGINX_CONF = new URL("../../deploy/nginx/nginx.conf", import.meta.url).pathname;
const hasNginx = existsSync(NGINX);

/** A loopback port nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().once("error", reject).listen(0, "127.0.0.1", () => {
      const { port } = (probe.address() as net.AddressInfo);
      probe.close(() => resolve(port));
    });
  });
}

describe.skipIf(!hasNginx)("behind deploy/nginx/nginx.conf (Debian nginx on loopback): the client's Host reaches the service", () => {
  let nginx: ChildProcess | undefined;
  /** Kept out of `running`, which afterEach closes after every test. */
  let behind: Harness | undefined;
  let dir = "";
  let httpPort = 0;
  let grpcPort = 0;
  const nginxLog: string[] = [];

  beforeAll(async () => {
    behind = await start();
    running = undefined;
    const { server } = behind;
    [httpPort, grpcPort] = await Promise.all([freePort(), freePort()]);
    dir = mkdtempSync(join(tmpdir(), "sutra-nginx-hosts-"));
    chmodSync(dir, 0o777);
    const config = readFileSync(NGINX_CONF, "utf8")
      .replaceAll("sutra-1:8080", `127.0.0.1:${server.port}`)
      .replaceAll("sutra-2:8080", `127.0.0.1:${server.port}`)
      .replace("worker_processes auto;", "worker_processes 1;")
      .replace("listen 9090 http2;", `listen 127.0.0.1:${grpcPort} http2;`)
      .replace("listen 8080;", `listen 127.0.0.1:${httpPort};`)
      .replaceAll("/tmp/", `${dir}/`);
    writeFileSync(join(dir, "nginx.conf"), config);
    nginx = spawn(NGINX, ["-p", `${dir}/`, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"], { stdio: ["ignore", "ignore", "pipe"] });
    nginx.stderr?.on("data", (chunk: Buffer) => nginxLog.push(chunk.toString()));
    const deadline = Date.now() + 10_000;
    for (;;) {
      const answer = await request(httpPort, { path: "/v1/health" }).catch(() => undefined);
      if (answer?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`nginx did not answer within 10 s: ${nginxLog.join("")}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }, 30_000);

  afterAll(async () => {
    if (nginx !== undefined && nginx.exitCode === null) {
      await new Promise((resolve) => {
        nginx!.once("exit", resolve);
        nginx!.kill("SIGQUIT");
      });
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
    await behind?.server.close();
  });

  it("HTTP/1.1 port: a foreign Host is 421, loopback is served, and a same-origin POST keeps its port (Host $http_host)", async () => {
    const embedder = behind!.embedder;
    expect((await request(httpPort, { path: "/v1/models", headers: { host: FOREIGN_HOST } })).status).toBe(421);
    expect((await request(httpPort, { path: "/v1/models", headers: { host: `localhost:${httpPort}` } })).status).toBe(200);
    const post = (origin: string) =>
      request(httpPort, {
        method: "POST",
        path: "/v1/embeddings",
        headers: { host: `localhost:${httpPort}`, origin, "content-type": "application/json" },
        body: EMBED_BODY,
      });
    expect((await post(`http://localhost:${httpPort}`)).status).toBe(200);
    expect((await post(FOREIGN_ORIGIN)).status).toBe(403);
    expect(await openWebSocket(httpPort, { host: FOREIGN_HOST })).toEqual({ status: 421, code: "MISDIRECTED_REQUEST" });
    expect(embedder.requests).toHaveLength(1);
  });

  it("gRPC port: the client's :authority reaches the service (a foreign one is refused, a loopback one served)", async () => {
    const refused = await grpcCall(grpcPort, GRPC_HEALTH_CHECK, FOREIGN_HOST);
    expect(refused?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(grpcReason(refused)).toBe("MISDIRECTED_REQUEST");
    expect(await grpcCall(grpcPort, GRPC_HEALTH_CHECK, `localhost:${grpcPort}`)).toBeUndefined();
  });
});
