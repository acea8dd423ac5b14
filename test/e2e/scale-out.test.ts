import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeClient, type RetryEvent } from "../../src/client/node.js";

const NGINX = "/usr/sbin/nginx";
const SUTRA = new URL("../../bin/sutra.mjs", import.meta.url).pathname;
const NGINX_CONF = new URL("../../deploy/nginx/nginx.conf", import.meta.url).pathname;
const GENERATE_ROUTE = 'route="/sutra.embedder.v1.EmbedderService/GenerateEmbeddings"';

const hasNginx = existsSync(NGINX);
const title = hasNginx
  ? "scale-out: two replicas behind Debian nginx (deploy/nginx/nginx.conf) on loopback"
  : `scale-out: two replicas behind nginx: skipped because ${NGINX} is missing (install Debian's nginx-light)`;

/** A loopback port nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().once("error", reject).listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** A `sutra serve` process on `port`, its output kept for failure messages. */
interface Replica {
  port: number;
  process: ChildProcess;
  log: string[];
}

function startReplica(port: number): Replica {
  const child = spawn(
    process.execPath,
    [SUTRA, "serve", "--host", "127.0.0.1", "--port", String(port), "--profile", "minimal", "--log-level", "warn", "--data-dir", "", "--cache-size", "0"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const log: string[] = [];
  child.stdout?.on("data", (chunk: Buffer) => log.push(chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => log.push(chunk.toString()));
  return { port, process: child, log };
}

async function waitHealthy(url: string, what: () => string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url);
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${url} did not turn healthy within ${timeoutMs} ms:\n${what()}`);
}

/** GenerateEmbeddings calls a replica answered over gRPC with OK, from its /metrics. */
async function servedCalls(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith("sutra_requests_total{") && line.includes(GENERATE_ROUTE) && line.includes('code="ok"') && line.includes('protocol="grpc"'))
    .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0);
}

function stop(child: ChildProcess | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

describe.skipIf(!hasNginx)(title, () => {
  const replicas: Replica[] = [];
  let nginx: ChildProcess | undefined;
  const nginxLog: string[] = [];
  let grpcPort = 0;
  let dir = "";

  beforeAll(async () => {
    const [first, second, http1Port, http2Port] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    grpcPort = http2Port;
    replicas.push(startReplica(first), startReplica(second));
    dir = mkdtempSync(join(tmpdir(), "sutra-nginx-"));
    chmodSync(dir, 0o777);
    const config = readFileSync(NGINX_CONF, "utf8")
      .replaceAll("sutra-1:8080", `127.0.0.1:${first}`)
      .replaceAll("sutra-2:8080", `127.0.0.1:${second}`)
      .replace("listen 9090 http2;", `listen 127.0.0.1:${http2Port} http2;`)
      .replace("listen 8080;", `listen 127.0.0.1:${http1Port};`)
      .replaceAll("/tmp/", `${dir}/`);
    writeFileSync(join(dir, "nginx.conf"), config);
    nginx = spawn(NGINX, ["-p", `${dir}/`, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"], { stdio: ["ignore", "pipe", "pipe"] });
    nginx.stderr?.on("data", (chunk: Buffer) => nginxLog.push(chunk.toString()));
    await Promise.all(replicas.map((replica) => waitHealthy(`http://127.0.0.1:${replica.port}/v1/health`, () => replica.log.join(""))));
    // Through nginx's HTTP/1.1 port: the REST health route reaches a replica.
    await waitHealthy(`http://127.0.0.1:${http1Port}/v1/health`, () => `nginx ${nginx?.exitCode === null ? "running" : `exited ${nginx?.exitCode}`}: ${nginxLog.join("")}`, 10_000);
  }, 180_000);

  afterAll(async () => {
    await Promise.all([...replicas.map((replica) => stop(replica.process)), stop(nginx, "SIGQUIT")]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("1,000 gRPC calls through nginx land at least 30% on each replica", async () => {
    const before = await Promise.all(replicas.map((replica) => servedCalls(replica.port)));
    const client = createNodeClient({ baseUrl: `http://127.0.0.1:${grpcPort}` });
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < 1000) {
        const index = next++;
        const response = await client.embed({ texts: [`balanced request ${index}`] });
        expect(response.embeddings[0].values).toHaveLength(512);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    client.close();
    const after = await Promise.all(replicas.map((replica) => servedCalls(replica.port)));
    const served = after.map((count, index) => count - before[index]);
    console.log(`scale-out: 1,000 calls through nginx served ${served.join(" / ")} by the two replicas`);
    expect(served[0] + served[1]).toBe(1000);
    for (const count of served) expect(count).toBeGreaterThanOrEqual(300);
  }, 240_000);

  it("one replica SIGKILLed mid-run: an SDK client with retries sees 0 failed calls out of 1,000", async () => {
    const retries: RetryEvent[] = [];
    const client = createNodeClient({ baseUrl: `http://127.0.0.1:${grpcPort}`, retry: { initialBackoffMs: 50, onRetry: (event) => retries.push(event) } });
    const reference = await client.embed({ texts: ["the same text every time"] });
    let next = 0;
    let done = 0;
    let failed = 0;
    const failures = new Set<string>();
    let killed = false;
    const worker = async (): Promise<void> => {
      while (next < 1000) {
        next += 1;
        try {
          const response = await client.embed({ texts: ["the same text every time"] });
          expect(response.embeddings[0].values).toEqual(reference.embeddings[0].values);
        } catch (error) {
          failed += 1;
          failures.add(String(error));
        }
        done += 1;
        if (done === 300 && !killed) {
          killed = true;
          replicas[1].process.kill("SIGKILL");
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    client.close();
    console.log(`scale-out: replica killed after 300 of 1,000 calls; ${failed} failed, ${retries.length} retried (${[...new Set(retries.map((event) => event.facts.reason ?? `code ${event.facts.code}`))].join(", ")})`);
    expect(killed).toBe(true);
    expect(replicas[1].process.signalCode ?? (await new Promise((resolve) => replicas[1].process.once("exit", (_code, signal) => resolve(signal))))).toBe("SIGKILL");
    expect(done).toBe(1000);
    expect(failed, [...failures].join("\n")).toBe(0);
  }, 240_000);
});
