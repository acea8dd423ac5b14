import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it, type ExpectStatic } from "vitest";
import { metricKey, parseMetrics } from "../support/prometheus-text.js";
import { startTestServer } from "./transport-fixtures.js";
import type { TestServer } from "./transport-fixtures.js";

/** How long a connection has to send its opening (the shipped value, not shortened for the test). */
const OPENING_DEADLINE_MS = 10_000;
/** A dribbling connection still open this long after its start has not been cut by the deadline. */
const CUT_LIMIT_MS = 20_000;
/** Pause between two dribbled bytes. */
const DRIBBLE_EVERY_MS = 2_000;

/** The ms from `since` until `socket` closes, or null when it is still open after CUT_LIMIT_MS (then it is destroyed). */
function closedAfter(socket: net.Socket, since: number): Promise<number | null> {
  return new Promise((resolve) => {
    const limit = setTimeout(() => {
      socket.destroy();
      resolve(null);
    }, CUT_LIMIT_MS - (Date.now() - since));
    socket.once("close", () => {
      clearTimeout(limit);
      resolve(Date.now() - since);
    });
  });
}

/** Writes `bytes` one byte every DRIBBLE_EVERY_MS until the socket closes; the first byte goes at once. */
function dribble(socket: net.Socket, bytes: string): void {
  let sent = 0;
  const next = (): void => {
    if (socket.destroyed || sent === bytes.length) return;
    socket.write(bytes[sent]);
    sent += 1;
    timer = setTimeout(next, DRIBBLE_EVERY_MS);
  };
  let timer = setTimeout(next, 0);
  socket.once("close", () => clearTimeout(timer));
}

/** What a socket received, as latin1 text, kept up to date. */
function received(socket: net.Socket): { text: string } {
  const seen = { text: "" };
  socket.on("data", (bytes: Buffer) => (seen.text += bytes.toString("latin1")));
  socket.on("error", () => undefined);
  return seen;
}

/** A cleartext socket, connected. */
function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Sends one HTTP/1.1 GET on a keep-alive socket and resolves with the whole answer (head and content-length body). */
function exchange(socket: net.Socket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = "";
    const onData = (bytes: Buffer): void => {
      answer += bytes.toString("latin1");
      const headEnd = answer.indexOf("\r\n\r\n");
      const length = /\r\ncontent-length: (\d+)/i.exec(answer);
      if (headEnd === -1 || length === null || answer.length < headEnd + 4 + Number(length[1])) return;
      socket.off("data", onData);
      socket.off("close", onClose);
      resolve(answer);
    };
    const onClose = (): void => reject(new Error(`closed before an answer; got ${JSON.stringify(answer.slice(0, 80))}`));
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`);
  });
}

/** Asserts that a connection was cut by the opening deadline: not before it, and before CUT_LIMIT_MS. */
function expectCutAtDeadline(expect: ExpectStatic, closed: number | null): void {
  expect(closed, "still open after 20 s").not.toBeNull();
  expect(closed).toBeGreaterThanOrEqual(OPENING_DEADLINE_MS - 500);
  expect(closed).toBeLessThan(CUT_LIMIT_MS);
}

/** Header bytes to dribble: never a complete head. */
const HEADER_DRIBBLE = "x-dribble: " + "a".repeat(200);

const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

describe.concurrent("opening deadline on cleartext connections", () => {
  it("drops a connection that sends `G` and then one byte every 2 s, 10 s after it opened", async ({ expect }) => {
    const server = await startTestServer();
    try {
      const socket = await connect(server.port);
      const start = Date.now();
      received(socket);
      dribble(socket, "GET /v1/health HTTP/1.1" + "x".repeat(100));
      const closed = await closedAfter(socket, start);
      expectCutAtDeadline(expect, closed);
    } finally {
      await server.close();
    }
  });

  it("drops a connection that sends a whole request line and then dribbles header bytes, 10 s after it opened", async ({ expect }) => {
    const server = await startTestServer();
    try {
      const socket = await connect(server.port);
      const start = Date.now();
      received(socket);
      socket.write("GET /v1/health HTTP/1.1\r\n");
      dribble(socket, HEADER_DRIBBLE);
      const closed = await closedAfter(socket, start);
      expectCutAtDeadline(expect, closed);
    } finally {
      await server.close();
    }
  });

  it("answers 408 and closes a keep-alive connection whose second request head is dribbled", async ({ expect }) => {
    const server = await startTestServer();
    try {
      const socket = await connect(server.port);
      const seen = received(socket);
      expect(await exchange(socket, "/v1/health")).toMatch(/^HTTP\/1\.1 200 /);
      seen.text = "";
      const start = Date.now();
      socket.write("GET /v1/health HTTP/1.1\r\n");
      dribble(socket, HEADER_DRIBBLE);
      const closed = await closedAfter(socket, start);
      expectCutAtDeadline(expect, closed);
      expect(seen.text).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      await server.close();
    }
  });

  it("drops an HTTP/2 connection that sends the preface and then dribbles its SETTINGS frame, 10 s after it opened", async ({ expect }) => {
    const server = await startTestServer();
    try {
      const socket = await connect(server.port);
      const start = Date.now();
      received(socket);
      socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
      // A SETTINGS frame header announcing 12 bytes of settings, then the settings, a byte at a time.
      dribble(socket, "\x00\x00\x0c\x04\x00\x00\x00\x00\x00" + "\x00\x03\x00\x00\x00\x64\x00\x04\x00\x01\x00\x00");
      const closed = await closedAfter(socket, start);
      expectCutAtDeadline(expect, closed);
    } finally {
      await server.close();
    }
  });

  it("keeps serving a keep-alive HTTP/1.1 client that pauses 4 s between requests for 16 s in all", async ({ expect }) => {
    const server = await startTestServer();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const ports: number[] = [];
      for (let index = 0; index < 5; index += 1) {
        if (index > 0) await sleep(4_000);
        const status = await new Promise<number | undefined>((resolve, reject) => {
          http
            .get(`${server.baseUrl}/v1/health`, { agent }, (response) => {
              ports.push(response.socket.localPort ?? 0);
              response.resume();
              response.on("end", () => resolve(response.statusCode));
            })
            .on("error", reject);
        });
        expect(status).toBe(200);
      }
      expect(new Set(ports).size).toBe(1);
    } finally {
      agent.destroy();
      await server.close();
    }
  });

  it("keeps an HTTP/2 connection that is idle 12 s between two requests", async ({ expect }) => {
    const server = await startTestServer();
    const session = http2.connect(server.baseUrl);
    try {
      expect(await h2Status(session)).toBe(200);
      await sleep(12_000);
      expect(session.closed || session.destroyed).toBe(false);
      expect(await h2Status(session)).toBe(200);
    } finally {
      session.close();
      await server.close();
    }
  });
});

/** The status of a GET /v1/health on an HTTP/2 session. */
function h2Status(session: http2.ClientHttp2Session): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":path": "/v1/health" });
    stream.on("response", (headers) => resolve(headers[":status"]));
    stream.on("error", reject);
    stream.resume();
  });
}

describe("connections per client address", () => {
  it("with a cap of 3, closes a 4th connection at once, keeps the first three usable and takes a new one once one closes", async () => {
    const server = await startTestServer({ connectionLimits: { maxConnectionsPerAddress: 3 } });
    const sockets: net.Socket[] = [];
    try {
      sockets.push(...(await Promise.all([connect(server.port), connect(server.port), connect(server.port)])));
      for (const socket of sockets) expect(await exchange(socket, "/v1/health")).toMatch(/^HTTP\/1\.1 200 /);
      const fourth = await connect(server.port);
      const start = Date.now();
      const seen = received(fourth);
      fourth.write("GET /v1/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
      const closed = await closedAfter(fourth, start);
      expect(closed, "the 4th connection stayed open").not.toBeNull();
      expect(closed).toBeLessThan(1_000);
      expect(seen.text).toBe("");
      for (const socket of sockets) expect(await exchange(socket, "/v1/health")).toMatch(/^HTTP\/1\.1 200 /);
      const metrics = parseMetrics((await exchange(sockets[0], "/metrics")).split("\r\n\r\n")[1]);
      expect(metrics.get(metricKey("sutra_connections_refused_total", { reason: "per_address" }))).toBe(1);
      sockets[2].end();
      await new Promise((resolve) => sockets[2].once("close", resolve));
      // The server frees the count when its side of the connection closes, just after the client's.
      let answer = "";
      for (let attempt = 0; attempt < 20 && answer === ""; attempt += 1) {
        const socket = await connect(server.port);
        received(socket);
        answer = await exchange(socket, "/v1/health").catch(() => "");
        socket.destroy();
        if (answer === "") await sleep(100);
      }
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      for (const socket of sockets) socket.destroy();
      await server.close();
    }
  });

  it("with no cap (0), serves 50 connections from one address at once", async () => {
    const server = await startTestServer({ connectionLimits: { maxConnectionsPerAddress: 0 } });
    const sockets: net.Socket[] = [];
    try {
      sockets.push(...(await Promise.all(Array.from({ length: 50 }, () => connect(server.port)))));
      const answers = await Promise.all(sockets.map((socket) => exchange(socket, "/v1/health")));
      expect(answers.filter((answer) => answer.startsWith("HTTP/1.1 200 "))).toHaveLength(50);
    } finally {
      for (const socket of sockets) socket.destroy();
      await server.close();
    }
  });
});

describe.skipIf(!hasOpenssl)("opening deadline and address cap with TLS", () => {
  let directory: string;
  let cert: Buffer;
  let key: Buffer;
  /** The first flight of a TLS client (its ClientHello), to dribble. */
  let clientHello: Buffer;

  beforeAll(async () => {
    directory = mkdtempSync(join(tmpdir(), "sutra-tls-deadline-"));
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
        "-keyout", join(directory, "key.pem"), "-out", join(directory, "cert.pem"),
        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
      { stdio: "ignore" },
    );
    cert = readFileSync(join(directory, "cert.pem"));
    key = readFileSync(join(directory, "key.pem"));
    clientHello = await new Promise<Buffer>((resolve) => {
      const recorder = net.createServer((socket) =>
        socket.once("data", (bytes: Buffer) => {
          socket.destroy();
          recorder.close();
          resolve(bytes);
        }),
      );
      recorder.listen(0, "127.0.0.1", () => {
        const { port } = recorder.address() as net.AddressInfo;
        tls.connect({ port, host: "127.0.0.1", ca: cert }).on("error", () => undefined);
      });
    });
  });

  afterAll(() => {
    rmSync(directory, { recursive: true, force: true });
  });

  /** A TLS connection that finished its handshake with the given ALPN protocol. */
  const secureConnect = (server: TestServer, protocol: string): Promise<tls.TLSSocket> =>
    new Promise((resolve, reject) => {
      const socket = tls.connect({ port: server.port, host: "127.0.0.1", ca: cert, ALPNProtocols: [protocol] }, () => resolve(socket));
      socket.once("error", reject);
    });

  describe.concurrent("deadlines", () => {
    it("drops a TLS handshake dribbled a byte every 2 s, 10 s after it opened", async ({ expect }) => {
      const server = await startTestServer({ tls: { cert, key } });
      try {
        const socket = await connect(server.port);
        const start = Date.now();
        received(socket);
        dribble(socket, clientHello.toString("latin1"));
        const closed = await closedAfter(socket, start);
        expectCutAtDeadline(expect, closed);
      } finally {
        await server.close();
      }
    });

    it("answers 408 and closes a TLS http/1.1 connection that sends a request line and then dribbles header bytes", async ({ expect }) => {
      const server = await startTestServer({ tls: { cert, key } });
      try {
        const socket = await secureConnect(server, "http/1.1");
        const start = Date.now();
        const seen = received(socket);
        socket.write("GET /v1/health HTTP/1.1\r\n");
        dribble(socket, HEADER_DRIBBLE);
        const closed = await closedAfter(socket, start);
        expectCutAtDeadline(expect, closed);
        expect(seen.text).toMatch(/^HTTP\/1\.1 408 /);
      } finally {
        await server.close();
      }
    });

    it("drops a TLS h2 connection that never sends the HTTP/2 preface, 10 s after its handshake", async ({ expect }) => {
      const server = await startTestServer({ tls: { cert, key } });
      try {
        const socket = await secureConnect(server, "h2");
        const start = Date.now();
        received(socket);
        expect(socket.alpnProtocol).toBe("h2");
        const closed = await closedAfter(socket, start);
        expectCutAtDeadline(expect, closed);
      } finally {
        await server.close();
      }
    });

    it("keeps a TLS h2 connection that is idle 12 s between two requests", async ({ expect }) => {
      const server = await startTestServer({ tls: { cert, key } });
      const session = http2.connect(server.baseUrl, { ca: cert });
      try {
        expect(await h2Status(session)).toBe(200);
        await sleep(12_000);
        expect(session.closed || session.destroyed).toBe(false);
        expect(await h2Status(session)).toBe(200);
      } finally {
        session.close();
        await server.close();
      }
    });
  });

  it("with a cap of 3, refuses a 4th TLS connection before its handshake and serves the first three", async () => {
    const server = await startTestServer({ tls: { cert, key }, connectionLimits: { maxConnectionsPerAddress: 3 } });
    const sockets: tls.TLSSocket[] = [];
    try {
      sockets.push(...(await Promise.all([1, 2, 3].map(() => secureConnect(server, "http/1.1")))));
      const start = Date.now();
      const refused = await secureConnect(server, "http/1.1").then(
        (socket) => {
          socket.destroy();
          return null;
        },
        () => Date.now() - start,
      );
      expect(refused, "the 4th TLS connection finished its handshake").not.toBeNull();
      expect(refused).toBeLessThan(1_000);
      for (const socket of sockets) expect(await exchange(socket, "/v1/health")).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      for (const socket of sockets) socket.destroy();
      await server.close();
    }
  });
});
