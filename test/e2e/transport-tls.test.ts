import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import https from "node:https";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { fakeVector, startTestServer } from "./transport-fixtures.js";
import type { TestServer } from "./transport-fixtures.js";

const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

const title = hasOpenssl
  ? "TLS with ALPN"
  : "TLS with ALPN: skipped because the openssl CLI, which makes the test certificate, is missing";

describe.skipIf(!hasOpenssl)(title, () => {
  let directory: string;
  let tls: { cert: Buffer; key: Buffer };
  let server: TestServer;

  beforeAll(() => {
    directory = mkdtempSync(join(tmpdir(), "sutra-tls-"));
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
        "-keyout", join(directory, "key.pem"), "-out", join(directory, "cert.pem"),
        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
      { stdio: "ignore" },
    );
    tls = { cert: readFileSync(join(directory, "cert.pem")), key: readFileSync(join(directory, "key.pem")) };
  });

  afterAll(() => {
    rmSync(directory, { recursive: true, force: true });
  });

  beforeEach(async () => {
    server = await startTestServer({ tls });
  });

  afterEach(async () => {
    await server.close();
  });

  it("negotiates h2 by ALPN and serves REST over it", async () => {
    const session = http2.connect(server.baseUrl, { ca: tls.cert });
    try {
      const stream = session.request({ ":path": "/v1/health" });
      const status = await new Promise<number | undefined>((resolve, reject) => {
        stream.on("response", (headers) => resolve(headers[":status"]));
        stream.on("error", reject);
      });
      stream.resume();
      expect(session.alpnProtocol).toBe("h2");
      expect(status).toBe(200);
    } finally {
      session.close();
    }
  });

  it("negotiates http/1.1 by ALPN and serves REST over it", async () => {
    const agent = new https.Agent({ ca: tls.cert, keepAlive: false, ALPNProtocols: ["http/1.1"] });
    const { alpn, status, body } = await new Promise<{ alpn: string | false | null; status?: number; body: string }>((resolve, reject) => {
      const request = https.request(
        `${server.baseUrl}/v1/embeddings`,
        { method: "POST", agent, headers: { "content-type": "application/json" } },
        (response) => {
          let text = "";
          response.on("data", (chunk: Buffer) => (text += chunk.toString()));
          response.on("end", () =>
            resolve({ alpn: (response.socket as TLSSocket).alpnProtocol, status: response.statusCode, body: text }),
          );
        },
      );
      request.on("error", reject);
      request.end(JSON.stringify({ texts: ["secure"] }));
    });
    agent.destroy();
    expect(alpn).toBe("http/1.1");
    expect(status).toBe(200);
    expect(JSON.parse(body).embeddings).toEqual([Array.from(fakeVector("secure"))]);
  });

  it("serves gRPC over h2 and Connect over HTTP/1.1", async () => {
    const grpc = createClient(EmbedderService, createGrpcTransport({ baseUrl: server.baseUrl, nodeOptions: { ca: tls.cert } }));
    expect((await grpc.generateEmbeddings({ texts: ["g"] })).embeddings[0].values).toEqual(Array.from(fakeVector("g")));
    const connect = createClient(
      EmbedderService,
      createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1", nodeOptions: { ca: tls.cert } }),
    );
    expect((await connect.generateEmbeddings({ texts: ["c"] })).embeddings[0].values).toEqual(Array.from(fakeVector("c")));
  });

  it("upgrades HTTP/1.1 over TLS to the WebSocket protocol (wss) and streams chunks", async () => {
    const socket = new WebSocket(`wss://127.0.0.1:${server.port}/v1/embeddings/ws`, { ca: tls.cert });
    const messages: Array<{ id: string; type: string; payload: { action?: string; chunk_id?: string; embedding?: number[] } }> = [];
    const ended = new Promise<void>((resolve, reject) => {
      socket.on("message", (data) => {
        const message = JSON.parse(String(data));
        messages.push(message);
        if (message.payload.action === "stream_end") resolve();
      });
      socket.once("error", reject);
    });
    await new Promise((resolve) => socket.once("open", resolve));
    const send = (id: string, action: string, payload: object) => socket.send(JSON.stringify({ id, type: "request", timestamp: "", payload: { action, ...payload } }));
    send("s", "stream_embed", { config: { buffer_size: 2 } });
    send("a", "add_chunk", { chunk_id: "one", text: "secure" });
    send("b", "add_chunk", { chunk_id: "two", text: "stream", is_final: true });
    await ended;
    socket.close();
    const embeddings = messages.filter((message) => message.type === "response" && message.payload.chunk_id !== undefined);
    expect(embeddings.map((message) => [message.id, message.payload.chunk_id]).sort()).toEqual([["a", "one"], ["b", "two"]]);
    expect(embeddings.find((message) => message.id === "a")?.payload.embedding).toEqual(Array.from(fakeVector("secure")));
  });

  it("does not speak cleartext on a TLS port", async () => {
    await expect(fetch(`http://127.0.0.1:${server.port}/v1/health`)).rejects.toThrow();
  });
});
