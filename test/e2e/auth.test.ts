import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { DEFAULT_MODEL_ID } from "../../src/models/builtin.js";
import { ecKeyPair, signHs256, signWith, TEST_JWT_SECRET, unsecuredToken } from "../support/jwt.js";
import { startRealService, type RunningService } from "../support/real-service.js";

const USER_KEY = "sk-user-0123456789";
const ADMIN_KEY = "sk-admin-9876543210";

interface Answer {
  status: number;
  headers: Headers;
  body: any;
}

async function call(baseUrl: string, path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const response = await fetch(baseUrl + path, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers: { "content-type": "application/json", ...init.headers },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Prometheus text stays a string.
  }
  return { status: response.status, headers: response.headers, body };
}

function expectRefused(answer: Answer, status: number, code: string): void {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  expect(answer.body.error).toMatchObject({ code, request_id: answer.headers.get("x-request-id") });
  if (status === 401) expect(answer.headers.get("www-authenticate")).toMatch(/^Bearer/);
}

async function grpcFailure(promise: Promise<unknown>): Promise<ConnectError> {
  const error = await promise.then(() => undefined, (reason: unknown) => reason);
  expect(error).toBeInstanceOf(ConnectError);
  return error as ConnectError;
}

describe("auth mode api-key (real server)", () => {
  let running: RunningService;
  const logLines: string[] = [];

  beforeAll(async () => {
    const capture = pino({ level: "debug" }, { write: (line: string) => logLines.push(line) });
    running = await startRealService({ authMode: "api-key", apiKeys: `${USER_KEY},${ADMIN_KEY}:admin` }, capture);
  });
  afterAll(() => running?.stop());

  it("REST: missing or invalid key -> 401; X-API-Key or Bearer -> 200", async () => {
    const body = { texts: ["hello"] };
    expectRefused(await call(running.baseUrl, "/v1/embeddings", { body }), 401, "UNAUTHENTICATED");
    expectRefused(await call(running.baseUrl, "/v1/embeddings", { body, headers: { "x-api-key": "sk-wrong" } }), 401, "UNAUTHENTICATED");
    expectRefused(await call(running.baseUrl, "/v1/embeddings", { body, headers: { authorization: "Token abc" } }), 401, "UNAUTHENTICATED");
    expectRefused(await call(running.baseUrl, "/v1/models", {}), 401, "UNAUTHENTICATED");
    expect((await call(running.baseUrl, "/v1/embeddings", { body, headers: { "x-api-key": USER_KEY } })).status).toBe(200);
    expect((await call(running.baseUrl, "/v1/embeddings", { body, headers: { authorization: `Bearer ${USER_KEY}` } })).status).toBe(200);
  });

  it("the seed guide's request: /api/v1/embeddings, model text-embedding-3-small, X-API-KEY -> the model that ran", async () => {
    const answer = await call(running.baseUrl, "/api/v1/embeddings", {
      body: { texts: ["Hello, world!", "Embeddings are useful."], model: "text-embedding-3-small" },
      headers: { "X-API-KEY": USER_KEY },
    });
    expect(answer.status).toBe(200);
    expect(answer.body.model_info.model_id).toBe(DEFAULT_MODEL_ID);
    expect(answer.body.embeddings).toHaveLength(2);
    expect(answer.body.embeddings[0]).toHaveLength(512);
  });

  it("health and metrics stay open; admin routes need the admin role (403 for user)", async () => {
    expect((await call(running.baseUrl, "/v1/health")).status).toBe(200);
    expect((await call(running.baseUrl, "/v1/embeddings/health")).status).toBe(200);
    expect((await call(running.baseUrl, "/metrics")).status).toBe(200);
    const warmup = { models: [DEFAULT_MODEL_ID] };
    expectRefused(await call(running.baseUrl, "/v1/embeddings/models/warmup", { body: warmup }), 401, "UNAUTHENTICATED");
    const forbidden = await call(running.baseUrl, "/api/v1/embeddings/models/warmup", { body: warmup, headers: { "x-api-key": USER_KEY } });
    expectRefused(forbidden, 403, "FORBIDDEN");
    expect(forbidden.body.error.type).toBe("permission_error");
    const allowed = await call(running.baseUrl, "/v1/embeddings/models/warmup", { body: warmup, headers: { "x-api-key": ADMIN_KEY } });
    expect(allowed.status).toBe(200);
    expect(allowed.body.results).toEqual([expect.objectContaining({ model: DEFAULT_MODEL_ID, status: "warm", model_id: DEFAULT_MODEL_ID })]);
  });

  it("gRPC: UNAUTHENTICATED without or with a wrong key, PERMISSION_DENIED for user on an admin rpc, OK with a key; health open", async () => {
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
    const missing = await grpcFailure(client.generateEmbeddings({ texts: ["hello"] }));
    expect(missing.code).toBe(Code.Unauthenticated);
    expect(missing.findDetails(ErrorInfoSchema)[0]?.reason).toBe("UNAUTHENTICATED");
    const wrong = await grpcFailure(client.generateEmbeddings({ texts: ["hello"] }, { headers: { "x-api-key": "nope" } }));
    expect(wrong.code).toBe(Code.Unauthenticated);
    const ok = await client.generateEmbeddings({ texts: ["hello"] }, { headers: { "x-api-key": USER_KEY } });
    expect(ok.embeddings[0].values).toHaveLength(512);
    const bearer = await client.listModels({}, { headers: { authorization: `Bearer ${USER_KEY}` } });
    expect(bearer.models.map((model) => model.id)).toContain(DEFAULT_MODEL_ID);
    const denied = await grpcFailure(client.downloadModel({ modelId: "org/model" }, { headers: { "x-api-key": USER_KEY } }));
    expect(denied.code).toBe(Code.PermissionDenied);
    // An admin passes the access check; an empty id is refused (or answered) by the rpc itself, starting no download.
    const admin = await client.downloadModel({ modelId: "" }, { headers: { "x-api-key": ADMIN_KEY } }).then(() => undefined, (reason: unknown) => reason);
    expect([Code.PermissionDenied, Code.Unauthenticated]).not.toContain(ConnectError.from(admin ?? new ConnectError("ok", Code.Unknown)).code);
    const health = createClient(Health, createGrpcTransport({ baseUrl: running.baseUrl }));
    expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await client.getHealth({})).status).toBeGreaterThan(0);
  });

  it("never logs a key; logs the principal's key id with each embedding request", async () => {
    await call(running.baseUrl, "/v1/embeddings", { body: { texts: ["secret text 42"] }, headers: { "x-api-key": ADMIN_KEY } });
    await call(running.baseUrl, "/v1/embeddings", { body: { texts: ["x"] }, headers: { "x-api-key": "sk-wrong-key-in-logs" } });
    const all = logLines.join("");
    expect(all).not.toContain(USER_KEY);
    expect(all).not.toContain(ADMIN_KEY);
    expect(all).not.toContain("sk-wrong-key-in-logs");
    expect(all).not.toContain("secret text 42");
    const embedded = logLines.map((line) => JSON.parse(line)).filter((line) => line.msg === "embedded");
    expect(embedded.length).toBeGreaterThan(0);
    expect(embedded.at(-1)).toMatchObject({ principal: expect.stringMatching(/^key-[0-9a-f]{12}$/), model: DEFAULT_MODEL_ID, inputs: 1 });
    expect(embedded.at(-1).requestId).toEqual(expect.any(String));
    expect(embedded.at(-1).totalMs).toEqual(expect.any(Number));
  });
});

describe("auth mode jwt (real server)", () => {
  let running: RunningService;
  beforeAll(async () => {
    running = await startRealService({ authMode: "jwt", jwtSecret: TEST_JWT_SECRET, jwtAudience: "sutra" });
  });
  afterAll(() => running?.stop());

  const embed = (token: string) =>
    call(running.baseUrl, "/v1/embeddings", { body: { input: "hello", model: "text-embedding-3-small" }, headers: { authorization: `Bearer ${token}` } });

  it("REST: valid -> 200; expired, wrong signature, alg none, wrong audience, missing -> 401", async () => {
    expect((await embed(await signHs256({ aud: "sutra" }))).status).toBe(200);
    const expired = await embed(await signHs256({ aud: "sutra", exp: Math.floor(Date.now() / 1000) - 30 }));
    expectRefused(expired, 401, "UNAUTHENTICATED");
    expect(expired.body.error).toMatchObject({ type: "authentication_error", message: "the token has expired" });
    expectRefused(await embed(await signHs256({ aud: "sutra" }, "a-different-secret-of-enough-length-xx")), 401, "UNAUTHENTICATED");
    expectRefused(await embed(unsecuredToken({ aud: "sutra" })), 401, "UNAUTHENTICATED");
    expectRefused(await embed(await signHs256({ aud: "elsewhere" })), 401, "UNAUTHENTICATED");
    expectRefused(await call(running.baseUrl, "/v1/embeddings", { body: { input: "hello" } }), 401, "UNAUTHENTICATED");
  });

  it("REST: role user on an admin route -> 403, role admin -> 200", async () => {
    const headers = async (role: string) => ({ authorization: `Bearer ${await signHs256({ aud: "sutra", role })}` });
    expectRefused(await call(running.baseUrl, "/v1/embeddings/models/warmup", { body: {}, headers: await headers("user") }), 403, "FORBIDDEN");
    expect((await call(running.baseUrl, "/v1/embeddings/models/warmup", { body: {}, headers: await headers("admin") })).status).toBe(200);
  });

  it("gRPC: expired, forged and alg none -> UNAUTHENTICATED; user on DownloadModel -> PERMISSION_DENIED; valid -> OK", async () => {
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
    const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
    expect((await client.generateEmbeddings({ texts: ["hi"] }, as(await signHs256({ aud: "sutra" })))).embeddings).toHaveLength(1);
    for (const token of [
      await signHs256({ aud: "sutra", exp: Math.floor(Date.now() / 1000) - 30 }),
      await signHs256({ aud: "sutra" }, "a-different-secret-of-enough-length-xx"),
      unsecuredToken({ aud: "sutra" }),
    ]) {
      expect((await grpcFailure(client.generateEmbeddings({ texts: ["hi"] }, as(token)))).code).toBe(Code.Unauthenticated);
    }
    const denied = await grpcFailure(client.downloadModel({ modelId: "org/model" }, as(await signHs256({ aud: "sutra", role: "user" }))));
    expect(denied.code).toBe(Code.PermissionDenied);
  });
});

describe("auth mode jwt with an ES256 public key (real server)", () => {
  it("accepts tokens signed by the private key and refuses others", async () => {
    const pair = ecKeyPair();
    const running = await startRealService({ authMode: "jwt", jwtPublicKey: pair.publicPem });
    try {
      const token = await signWith(pair.privateKey, "ES256", {});
      const ok = await call(running.baseUrl, "/v1/models", { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      expectRefused(await call(running.baseUrl, "/v1/models", { headers: { authorization: `Bearer ${await signHs256({})}` } }), 401, "UNAUTHENTICATED");
      expectRefused(await call(running.baseUrl, "/v1/models", { headers: { authorization: `Bearer ${await signWith(ecKeyPair().privateKey, "ES256", {})}` } }), 401, "UNAUTHENTICATED");
    } finally {
      await running.stop();
    }
  });
});
