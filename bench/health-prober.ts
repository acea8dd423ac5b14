/**
 * A bystander for the flood phase, in a process of its own so that the
 * attackers' work in the bench process never delays it: calls `GET /v1/health`
 * on a fresh connection every `--interval-ms` until told to stop over IPC, then
 * sends its latencies (`{latencies, failed, slow}`) and exits.
 */
import http from "node:http";
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { url: { type: "string" }, "interval-ms": { type: "string", default: "100" } } });
if (!values.url || !process.send) throw new Error("run by bench/flood.ts with --url and an IPC channel");
const url = values.url;
const intervalMs = Number(values["interval-ms"]);

/** One fresh-connection health call; resolves to its latency, or rejects. */
function probeHealth(): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.get(`${url}/v1/health`, { agent: false, timeout: 10_000 }, (response) => {
      response.resume();
      response.on("end", () => (response.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`HTTP ${response.statusCode}`))));
    });
    request.on("timeout", () => request.destroy(new Error("timed out")));
    request.on("error", reject);
  });
}

let stopping = false;
process.on("message", () => {
  stopping = true;
});
const latencies: number[] = [];
const slow: string[] = [];
let failed = 0;
const started = performance.now();
while (!stopping) {
  const at = performance.now() - started;
  await Promise.all([
    probeHealth().then((ms) => {
      latencies.push(ms);
      if (ms > 250) slow.push(`${(at / 1000).toFixed(1)}s:${ms.toFixed(0)}ms`);
    }, () => failed++),
    delay(intervalMs),
  ]);
}
process.send({ latencies, failed, slow }, undefined, {}, () => process.exit(0));
