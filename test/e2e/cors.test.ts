import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { build } from "esbuild";
import { chromium, type Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createAccessControl } from "../../src/admission/access-control.js";
import { createRateLimiter } from "../../src/admission/rate-limit.js";
import { CORS_ALLOWED_HEADERS, CORS_EXPOSED_HEADERS, CORS_MAX_AGE_SECONDS } from "../../src/api/create-cors-handler.js";
import { createAuthenticator } from "../../src/auth/create-authenticator.js";
import { PACKAGE_ROOT } from "../../src/package-root.js";
import { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { browserSuiteTitle, CHROMIUM, CHROMIUM_FLAGS, hasChromium } from "../support/chromium.js";
import { requestHttp1, type HttpAnswer } from "../support/http1-request.js";
import { startTestServer, type TestServer } from "./transport-fixtures.js";

/**
 * CORS for browsers on other origins (SUTRA_CORS_ORIGINS): preflights over
 * HTTP/1.1 and HTTP/2, the headers on every transport's answers, and a page
 * on another origin calling the server through the web SDK in headless Chromium.
 */

const APP_ORIGIN = "https://app.example";
const FOREIGN_ORIGIN = "https://evil.example";
const EMBED_BODY = JSON.stringify({ texts: ["cross-origin"] });
const RPC_PATH = "/sutra.embedder.v1.EmbedderService/GenerateEmbeddings";

let running: TestServer | undefined;

afterEach(async () => {
  await running?.close();
  running = undefined;
});

/** A fixture server allowing `corsOrigins`; auth none unless `apiKey` is given. */
async function start(corsOrigins: string[], apiKey?: string): Promise<TestServer> {
  const access =
    apiKey === undefined
      ? undefined
      : createAccessControl({
          authenticator: createAuthenticator({ mode: "api-key", apiKeys: apiKey }),
          rateLimiter: createRateLimiter({ requestsPerMinute: 0, tokensPerMinute: 0, burst: 0 }),
        });
  running = await startTestServer({ origins: { corsOrigins }, access });
  return running;
}

/** One request over HTTP/2 (h2c prior knowledge). */
function request2(port: number, headers: http2.OutgoingHttpHeaders): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const stream = session.request(headers);
    let answerHeaders: http2.IncomingHttpHeaders = {};
    let text = "";
    stream.setEncoding("utf8");
    stream.on("response", (received) => (answerHeaders = received));
    stream.on("data", (chunk: string) => (text += chunk));
    stream.on("error", reject);
    stream.on("end", () => {
      session.close();
      resolve({ status: Number(answerHeaders[":status"]), headers: answerHeaders, text });
    });
    stream.end();
  });
}

/** The preflight a browser sends before a Connect JSON call from `origin`. */
function preflightHeaders(origin: string): Record<string, string> {
  return { origin, "access-control-request-method": "POST", "access-control-request-headers": "connect-protocol-version,content-type,x-request-id" };
}

/** A comma-separated header value as lower-case names. */
function listOf(value: string | string[] | undefined): string[] {
  return String(value ?? "").split(",").map((name) => name.trim().toLowerCase()).filter((name) => name !== "");
}

describe("preflights over plain HTTP", () => {
  it("an allowed origin gets 204 with the origin, methods, headers, max-age and Vary, on HTTP/1.1 and HTTP/2, without credentials under auth api-key", async () => {
    const server = await start([`${APP_ORIGIN}/`], "sk-cors-0123456789");
    const answers = [
      await requestHttp1(server.port, { method: "OPTIONS", path: RPC_PATH, headers: preflightHeaders(APP_ORIGIN) }),
      await requestHttp1(server.port, { method: "OPTIONS", path: "/v1/embeddings", headers: preflightHeaders("https://APP.example:443") }),
      await request2(server.port, { ":method": "OPTIONS", ":path": RPC_PATH, ...preflightHeaders(APP_ORIGIN) }),
    ];
    for (const answer of answers) {
      expect(answer.status).toBe(204);
      expect(answer.text).toBe("");
      expect(answer.headers["access-control-allow-origin"]).not.toBe("*");
      expect(listOf(answer.headers["access-control-allow-methods"])).toEqual(["get", "post", "options"]);
      expect(listOf(answer.headers["access-control-allow-headers"])).toEqual([...CORS_ALLOWED_HEADERS]);
      expect(listOf(answer.headers["access-control-allow-headers"])).toEqual(
        expect.arrayContaining(["content-type", "connect-protocol-version", "connect-timeout-ms", "grpc-timeout", "x-grpc-web", "x-user-agent", "authorization", "x-api-key", "x-request-id", "x-provider"]),
      );
      expect(answer.headers["access-control-max-age"]).toBe(String(CORS_MAX_AGE_SECONDS));
      expect(listOf(answer.headers.vary)).toContain("origin");
      expect(answer.headers["access-control-allow-credentials"]).toBeUndefined();
    }
    expect(answers.map((answer) => answer.headers["access-control-allow-origin"])).toEqual([APP_ORIGIN, "https://APP.example:443", APP_ORIGIN]);
    expect(server.embedder.requests).toEqual([]);
  });

  it("an origin not listed, Origin null, and any origin when none is listed get no CORS headers", async () => {
    const server = await start([APP_ORIGIN]);
    for (const origin of [FOREIGN_ORIGIN, "http://app.example", "null"]) {
      const answer = await requestHttp1(server.port, { method: "OPTIONS", path: RPC_PATH, headers: preflightHeaders(origin) });
      expect(answer.status, origin).not.toBe(204);
      expect(Object.keys(answer.headers).filter((name) => name.startsWith("access-control-")), origin).toEqual([]);
    }
    await server.close();
    running = undefined;
    const closed = await start([]);
    const answer = await requestHttp1(closed.port, { method: "OPTIONS", path: RPC_PATH, headers: preflightHeaders(APP_ORIGIN) });
    expect(answer.status).not.toBe(204);
    expect(Object.keys(answer.headers).filter((name) => name.startsWith("access-control-") || name === "vary")).toEqual([]);
  });

  it("an OPTIONS without Access-Control-Request-Method is not a preflight: the routes answer it", async () => {
    const server = await start([APP_ORIGIN]);
    const answer = await requestHttp1(server.port, { method: "OPTIONS", path: "/v1/models", headers: { origin: APP_ORIGIN } });
    expect(answer.status).not.toBe(204);
    expect(answer.headers["access-control-allow-methods"]).toBeUndefined();
  });
});

describe("answers to an allowed origin carry the origin and the exposed headers on every transport", () => {
  /** The response headers of one GenerateEmbeddings call over `transport` (a failed call's: its error's metadata), and its error if it failed. */
  async function rpcHeaders(transport: Transport, model = ""): Promise<{ headers: Headers; error?: ConnectError }> {
    let headers = new Headers();
    const client = createClient(EmbedderService, transport);
    try {
      await client.generateEmbeddings({ texts: ["cross-origin"], model }, { onHeader: (received) => (headers = received) });
      return { headers };
    } catch (error) {
      const connectError = ConnectError.from(error);
      return { headers: connectError.metadata, error: connectError };
    }
  }

  it("REST, the OpenAI dialect, Connect and gRPC-Web, successes and errors", async () => {
    const server = await start([APP_ORIGIN]);
    const json = { "content-type": "application/json", origin: APP_ORIGIN };
    const rest = await requestHttp1(server.port, { method: "POST", path: "/v1/embeddings", headers: json, body: EMBED_BODY });
    expect(rest.status, rest.text.slice(0, 200)).toBe(200);
    const openai = await requestHttp1(server.port, { method: "POST", path: "/v1/embeddings", headers: json, body: JSON.stringify({ input: "cross-origin" }) });
    expect(openai.status, openai.text.slice(0, 200)).toBe(200);
    expect(JSON.parse(openai.text)).toMatchObject({ object: "list" });
    const restError = await requestHttp1(server.port, { method: "POST", path: "/v1/embeddings", headers: json, body: JSON.stringify({ texts: ["x"], model: "no-such-model" }) });
    expect(restError.status).toBe(404);
    const notFound = await requestHttp1(server.port, { path: "/v1/no-such-route", headers: { origin: APP_ORIGIN } });
    expect(notFound.status).toBe(404);
    for (const answer of [rest, openai, restError, notFound]) {
      expect(answer.headers["access-control-allow-origin"]).toBe(APP_ORIGIN);
      expect(listOf(answer.headers["access-control-expose-headers"])).toEqual([...CORS_EXPOSED_HEADERS]);
      expect(listOf(answer.headers.vary)).toContain("origin");
    }
    expect(CORS_EXPOSED_HEADERS).toEqual(
      expect.arrayContaining(["grpc-status", "grpc-message", "grpc-status-details-bin", "retry-after", "x-request-id", "x-total-time", "x-tokenization-time", "x-queue-time", "x-inference-time", "x-embeddings-provider"]),
    );
    // Every header the REST answer sends for the page to read is exposed.
    expect(CORS_EXPOSED_HEADERS).toEqual(expect.arrayContaining(Object.keys(rest.headers).filter((name) => name.startsWith("x-"))));

    const withOrigin: Interceptor = (next) => (call) => {
      call.header.set("origin", APP_ORIGIN);
      return next(call);
    };
    const interceptors = [withOrigin];
    const baseUrl = server.baseUrl;
    const calls = [
      await rpcHeaders(createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors })),
      await rpcHeaders(createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors })),
      await rpcHeaders(createConnectTransport({ baseUrl, httpVersion: "2", interceptors })),
      await rpcHeaders(createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors }), "no-such-model"),
      await rpcHeaders(createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors }), "no-such-model"),
    ];
    expect(calls.map((call) => call.error?.code)).toEqual([undefined, undefined, undefined, Code.NotFound, Code.NotFound]);
    for (const call of calls) {
      expect(call.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
      expect(listOf(call.headers.get("access-control-expose-headers") ?? "")).toEqual([...CORS_EXPOSED_HEADERS]);
    }
  });

  it("an origin not listed gets no CORS headers, and its state-changing calls stay refused (403)", async () => {
    const server = await start([APP_ORIGIN]);
    const read = await requestHttp1(server.port, { path: "/v1/models", headers: { origin: FOREIGN_ORIGIN } });
    expect(read.status).toBe(200);
    const write = await requestHttp1(server.port, { method: "POST", path: "/v1/embeddings", headers: { "content-type": "application/json", origin: FOREIGN_ORIGIN }, body: EMBED_BODY });
    expect(write.status).toBe(403);
    for (const answer of [read, write]) {
      expect(Object.keys(answer.headers).filter((name) => name.startsWith("access-control-"))).toEqual([]);
      expect(listOf(answer.headers.vary)).toContain("origin");
    }
    expect(server.embedder.requests).toEqual([]);
  });
});

const browserTitle = browserSuiteTitle("a page on another origin in headless Chromium");

/** The web SDK (src/client/web.ts) bundled for browsers as a page would ship it, exposing createWebClient on `window.sutra`. */
async function bundleWebSdk(): Promise<string> {
  const result = await build({
    stdin: { contents: 'import { createWebClient } from "./src/client/web.ts";\nwindow.sutra = { createWebClient };', resolveDir: PACKAGE_ROOT, loader: "ts" },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0].text;
}

/** A second local HTTP server, another origin than the embedding server: an empty page and the SDK bundle. */
async function startPageServer(script: string): Promise<{ origin: string; close(): Promise<void> }> {
  const server = http.createServer((incoming, response) => {
    const isScript = incoming.url === "/sdk.js";
    response.setHeader("content-type", isScript ? "text/javascript; charset=utf-8" : "text/html; charset=utf-8");
    response.end(isScript ? script : '<!doctype html><title>another origin</title><script type="module" src="/sdk.js"></script>');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** What the page's embed call came to. */
type PageOutcome = { values: number[]; requestId: string | null; totalTime: string | null } | { error: string };

describe.skipIf(!hasChromium)(browserTitle, () => {
  let browser: Browser;
  let listed: Awaited<ReturnType<typeof startPageServer>>;
  let unlisted: Awaited<ReturnType<typeof startPageServer>>;

  beforeAll(async () => {
    const script = await bundleWebSdk();
    [listed, unlisted] = await Promise.all([startPageServer(script), startPageServer(script)]);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  });
  afterAll(async () => {
    await browser?.close();
    await listed?.close();
    await unlisted?.close();
  });

  /** Opens the page of `pageOrigin` and embeds `text` through the server at `baseUrl` with the web SDK; also fetches REST to read exposed headers. */
  async function embedFromPage(pageOrigin: string, baseUrl: string, protocol: "connect" | "grpc-web", text: string): Promise<{ outcome: PageOutcome; console: string[] }> {
    const page = await browser.newPage();
    const console: string[] = [];
    page.on("console", (message) => console.push(message.text()));
    await page.goto(`${pageOrigin}/`);
    await page.waitForFunction(() => "sutra" in window);
    const outcome = await page.evaluate(
      async ({ baseUrl, protocol, text }) => {
        type Sdk = { createWebClient(options: object): { embed(request: object): Promise<{ embeddings: Array<{ values: number[] }> }> } };
        const { createWebClient } = (window as unknown as { sutra: Sdk }).sutra;
        try {
          const client = createWebClient({ baseUrl, protocol, token: "page-token", retry: { maxAttempts: 1 } });
          const answer = await client.embed({ texts: [text] });
          const rest = await fetch(`${baseUrl}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json", "x-request-id": "page-request-1" }, body: JSON.stringify({ texts: [text] }) });
          return { values: Array.from(answer.embeddings[0].values), requestId: rest.headers.get("x-request-id"), totalTime: rest.headers.get("x-total-time") };
        } catch (error) {
          return { error: String(error) };
        }
      },
      { baseUrl, protocol, text },
    );
    await page.close();
    return { outcome, console };
  }

  it("embeds through Connect and gRPC-Web from a listed origin, with the same vectors a Node client gets, and reads the exposed headers", async () => {
    const server = await start([listed.origin]);
    const node = createClient(EmbedderService, createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1" }));
    const expected = Array.from((await node.generateEmbeddings({ texts: ["the cat sat on the mat"] })).embeddings[0].values);
    for (const protocol of ["connect", "grpc-web"] as const) {
      const { outcome } = await embedFromPage(listed.origin, server.baseUrl, protocol, "the cat sat on the mat");
      expect(outcome, protocol).toEqual({ values: expected, requestId: "page-request-1", totalTime: expect.stringMatching(/^\d+$/) });
    }
    // The node call, then per protocol the SDK call and the REST fetch.
    expect(server.embedder.requests).toHaveLength(5);
  }, 60_000);

  it("a page on an origin not listed is refused by the browser: nothing is embedded", async () => {
    const server = await start([listed.origin]);
    for (const protocol of ["connect", "grpc-web"] as const) {
      const { outcome, console } = await embedFromPage(unlisted.origin, server.baseUrl, protocol, "refused");
      expect(outcome, protocol).toEqual({ error: expect.stringMatching(/fetch/i) });
      expect(console.join("\n"), protocol).toMatch(/blocked by CORS policy/);
    }
    expect(server.embedder.requests).toEqual([]);
  }, 60_000);
});
