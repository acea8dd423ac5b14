/**
 * What held in the attack run (docs/SECURITY.md), pinned so later redesigns keep it:
 * authentication on every route and every rpc, path tricks on admin routes, and
 * compression bombs on the rpc transports.
 */
import http from "node:http";
import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { createRouteTable, SEED_PATH_PREFIX } from "../../src/api/rest/route-table.js";
import { startRealService, type RunningService } from "../support/real-service.js";

const USER_KEY = "sk-held-user-0123456789";
const ADMIN_KEY = "sk-held-admin-9876543210";

/** Routes that answer without a key: probes, metrics and the playground page. */
const OPEN_ROUTES = new Set([
  "GET /v1/health",
  "GET /api/v1/health",
  "GET /v1/embeddings/health",
  "GET /api/v1/embeddings/health",
  "GET /metrics",
  "GET /v1/embeddings/metrics",
  "GET /api/v1/embeddings/metrics",
  "GET /",
  "GET /index.html",
  "GET /playground.js",
]);

/** Routes not transcoded from the proto (seed, admin, WebSocket, playground), as `METHOD path`. */
const OTHER_ROUTES = [
  "POST /v1/embeddings/batch",
  "GET /v1/embeddings/models",
  "GET /v1/embeddings/models/x",
  "POST /v1/embeddings/models/warmup",
  "POST /v1/embeddings/models/download",
  "POST /v1/media/x/embeddings",
  "GET /v1/media/x/embeddings/status",
  "GET /v1/embeddings/providers-config",
  "GET /v1/embeddings/circuit-breakers",
  "POST /v1/embeddings/circuit-breakers/x/reset",
  ...OPEN_ROUTES,
];

interface RawAnswer {
  status: number;
  body: string;
}

/** An HTTP/1.1 request with the path sent exactly as written (fetch would normalise `..` and `.`). */
function rawRequest(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: "127.0.0.1", port, method, path, agent: false, headers: { "content-type": "application/json", ...headers } }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
    });
    request.on("error", reject);
    request.end(body ?? (method === "GET" ? undefined : "{}"));
  });
}

/** One gRPC call over a raw HTTP/2 stream: sends `frame` and ends; resolves to grpc-status. */
function rawGrpcCall(session: http2.ClientHttp2Session, path: string, frame: Buffer, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    let status: string | undefined;
    stream.on("response", (responseHeaders) => {
      if (responseHeaders["grpc-status"] !== undefined) status = String(responseHeaders["grpc-status"]);
    });
    stream.on("trailers", (trailers) => {
      status = String(trailers["grpc-status"]);
    });
    stream.on("data", () => undefined);
    stream.on("error", reject);
    stream.on("close", () => (status === undefined ? reject(new Error(`${path}: no grpc-status`)) : resolve(status)));
    stream.end(frame);
  });
}

/** A gRPC length-prefixed message: flag byte (1 = compressed), 4-byte big-endian length, payload. */
function grpcFrame(payload: Buffer, compressed: boolean): Buffer {
  const header = Buffer.alloc(5);
  header[0] = compressed ? 1 : 0;
  header.writeUInt32BE(payload.byteLength, 1);
  return Buffer.concat([header, payload]);
}

/** Fills path variables (`{model_id}`, `{name=**}`) with `x`. */
const concrete = (template: string) => template.replace(/\{[^}]+\}/g, "x");

describe("defences that held in the attack run (real server, auth api-key)", () => {
  let running: RunningService;
  let session: http2.ClientHttp2Session;

  beforeAll(async () => {
    running = await startRealService({ authMode: "api-key", apiKeys: `${USER_KEY},${ADMIN_KEY}:admin`, maxBodyBytes: 1024 * 1024 });
    session = http2.connect(running.baseUrl);
    session.on("error", () => undefined);
  });
  afterAll(async () => {
    session?.close();
    await running?.stop();
  });

  it("every REST route but the open ones answers 401 without a key, under /v1 and /api/v1", async () => {
    const transcoded = createRouteTable([EmbedderService]).map((route) => `${route.httpMethod} ${concrete(route.template.source)}`);
    const routes = [...new Set([...transcoded, ...OTHER_ROUTES])];
    expect(routes.length).toBeGreaterThan(20);
    for (const route of routes) {
      const [method, path] = route.split(" ");
      const variants = path.startsWith("/v1/") ? [path, SEED_PATH_PREFIX + path] : [path];
      for (const variant of variants) {
        const answer = await rawRequest(running.port, method, variant);
        const open = OPEN_ROUTES.has(`${method} ${variant}`);
        if (open) expect(answer.status, `${method} ${variant}`).not.toBe(401);
        else expect(answer.status, `${method} ${variant}: ${answer.body}`).toBe(401);
      }
    }
  });

  it("a WebSocket upgrade without a key is refused with 401, under /v1 and /api/v1", async () => {
    for (const path of ["/v1/embeddings/ws", "/api/v1/embeddings/ws"]) {
      const status = await new Promise<number>((resolve, reject) => {
        const socket = new WebSocket(`ws://127.0.0.1:${running.port}${path}`);
        socket.on("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0));
        socket.on("open", () => reject(new Error(`${path}: upgraded without a key`)));
        socket.on("error", () => undefined);
      });
      expect(status, path).toBe(401);
    }
  });

  it("every EmbedderService rpc but GetHealth answers UNAUTHENTICATED over gRPC without a key", async () => {
    const guarded = EmbedderService.methods.filter((method) => method !== EmbedderService.method.getHealth);
    expect(guarded.length).toBeGreaterThan(8);
    for (const method of guarded) {
      const status = await rawGrpcCall(session, `/${EmbedderService.typeName}/${method.name}`, grpcFrame(Buffer.alloc(0), false));
      expect(status, method.name).toBe("16");
    }
  });

  it("path tricks never reach an admin route with a user key", async () => {
    const tricks = [
      "/v1/embeddings/circuit-breakers/x/reset",
      "/v1/embeddings/./circuit-breakers/x/reset",
      "/v1/embeddings/models/../circuit-breakers/x/reset",
      "/v1//embeddings/circuit-breakers/x/reset",
      "/v1/embeddings/%63ircuit-breakers/x/reset",
      "/v1/embeddings/circuit-breakers%2Fx%2Freset",
      "/V1/embeddings/circuit-breakers/x/reset",
      "/api/v1/embeddings/circuit-breakers/x/reset",
      "/api/../v1/embeddings/circuit-breakers/x/reset",
      "/v1/embeddings/models/warmup",
      "/v1/embeddings/models/./warmup",
      "/v1/models/..%2F..%2Fetc/download",
      "/v1/models/x/download",
      "/v1/models/x/download/",
      "/v1/models/x/download?model_id=y",
    ];
    for (const path of tricks) {
      const answer = await rawRequest(running.port, "POST", path, { "x-api-key": USER_KEY });
      expect([403, 404], `${path}: ${answer.status} ${answer.body}`).toContain(answer.status);
    }
  });

  it("a gzip bomb is refused on Connect and gRPC without inflating it, and the server stays healthy", async () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20));
    expect(bomb.byteLength).toBeLessThan(128 * 1024);
    const path = `/${EmbedderService.typeName}/GenerateEmbeddings`;
    const connect = await rawRequest(running.port, "POST", path, { "x-api-key": ADMIN_KEY, "content-encoding": "gzip" }, bomb);
    expect(connect.status, connect.body).toBeGreaterThanOrEqual(400);
    expect(connect.status).toBeLessThan(500);
    const grpc = await rawGrpcCall(session, path, grpcFrame(bomb, true), { "x-api-key": ADMIN_KEY, "grpc-encoding": "gzip" });
    expect(grpc).toBe("8");
    const health = await rawRequest(running.port, "GET", "/v1/health");
    expect(health.status).toBe(200);
    const embedded = await rawRequest(running.port, "POST", "/v1/embeddings", { "x-api-key": USER_KEY }, JSON.stringify({ texts: ["still serving"] }));
    expect(embedded.status).toBe(200);
  });
});
