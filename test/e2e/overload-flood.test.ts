import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCorpusTexts } from "../../bench/corpora.js";
import { startChildService, type ChildService } from "../support/child-service.js";

const REQUESTS = 300;
const TEXTS_PER_REQUEST = 32;
const MAX_QUEUE = 8;
/** The default model's vector size. */
const DIMENSIONS = 512;
/** Longest a request may wait for its answer (issue 15, point 3). */
const ANSWER_TIMEOUT_MS = 30_000;
/**
 * The bench targets 50 ms at p95. Here other test files share the machine, and on 2 busy cores the
 * service takes 0.5-1.5 s to answer 300 simultaneous requests of any route (GET /v1/health
 * included), so the bound is loose: it still fails when refusals wait for inference, which for
 * this burst would take many seconds.
 */
const REFUSAL_P95_BOUND_MS = 3_000;

const QUERIES = readCorpusTexts("queries");

/** 32 texts no other request of this file sends: a query of the corpus tagged with its request and position. */
const requestTexts = (request: number): string[] =>
  Array.from({ length: TEXTS_PER_REQUEST }, (_, offset) => `${QUERIES[(request * TEXTS_PER_REQUEST + offset) % QUERIES.length]} (request ${request}, text ${offset})`);

interface Answer {
  status: number;
  retryAfter: string | null;
  body: { embeddings?: number[][]; error?: { code: string } };
  ms: number;
}

async function postTexts(baseUrl: string, texts: string[]): Promise<Answer> {
  const started = performance.now();
  const response = await fetch(`${baseUrl}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ texts }),
    signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS),
  });
  const body = (await response.json()) as Answer["body"];
  return { status: response.status, retryAfter: response.headers.get("retry-after"), body, ms: performance.now() - started };
}

/** Nearest-rank quantile of `values` (0..1). */
const quantile = (values: number[], fraction: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))];
};

const expectWhole = (embeddings: number[][] | undefined): void => {
  expect(embeddings).toHaveLength(TEXTS_PER_REQUEST);
  for (const vector of embeddings ?? []) {
    expect(vector).toHaveLength(DIMENSIONS);
    expect(vector.every((value) => Number.isFinite(value))).toBe(true);
  }
};

describe(`a burst of ${REQUESTS} ${TEXTS_PER_REQUEST}-text REST requests against SUTRA_MAX_QUEUE=${MAX_QUEUE}`, () => {
  // The service runs in a process of its own, so the client's work here never delays its answers.
  let service: ChildService;
  let baseUrl: string;
  beforeAll(async () => {
    service = await startChildService({ SUTRA_MAX_QUEUE: String(MAX_QUEUE) });
    baseUrl = `http://127.0.0.1:${service.port}`;
    // The first request of a fresh service loads and warms the model; the burst measures a running one.
    expect((await postTexts(baseUrl, requestTexts(REQUESTS + 1))).status).toBe(200);
  });
  afterAll(() => service?.stop());

  it("answers every request: some served whole and right, the rest refused OVERLOADED with Retry-After, at once", async () => {
    // One keep-alive connection per request, opened beforehand (fetch's pool has no per-origin cap), so latencies count answers, not TCP set-up.
    await Promise.all(Array.from({ length: REQUESTS }, async () => (await fetch(`${baseUrl}/v1/health`)).arrayBuffer()));
    const sent = Array.from({ length: REQUESTS }, (_, request) => requestTexts(request + 1));
    const answers = await Promise.all(sent.map((texts) => postTexts(baseUrl, texts)));

    const served = answers.flatMap((answer, request) => (answer.status === 200 ? [{ answer, texts: sent[request] }] : []));
    const refused = answers.filter((answer) => answer.status === 429);
    expect(served.length + refused.length, `statuses: ${answers.map((answer) => answer.status).join(",")}`).toBe(REQUESTS);
    expect(served.length).toBeGreaterThanOrEqual(1);
    for (const answer of answers) expect(answer.ms).toBeLessThan(ANSWER_TIMEOUT_MS);
    for (const answer of refused) {
      expect(answer.body.error?.code).toBe("OVERLOADED");
      expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1);
    }

    const refusalMs = refused.map((answer) => answer.ms);
    const servedMs = served.map(({ answer }) => answer.ms);
    console.log(
      `overload flood: ${served.length} served, ${refused.length} refused; refusal p50 ${quantile(refusalMs, 0.5).toFixed(1)} ms, ` +
        `p95 ${quantile(refusalMs, 0.95).toFixed(1)} ms, max ${Math.max(...refusalMs).toFixed(1)} ms; served p50 ${quantile(servedMs, 0.5).toFixed(1)} ms`,
    );
    expect(quantile(refusalMs, 0.95)).toBeLessThan(REFUSAL_P95_BOUND_MS);
    // Refused before their bodies were read or after, each refusal is counted once.
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    expect(metrics).toContain(`sutra_failures_total{reason="OVERLOADED"} ${refused.length}\n`);

    // Each served answer is whole and equals what its texts give when sent alone on the idle server.
    let worst = 0;
    for (const { answer, texts } of served) {
      expectWhole(answer.body.embeddings);
      const alone = await postTexts(baseUrl, texts);
      expect(alone.status).toBe(200);
      answer.body.embeddings?.forEach((vector, text) => {
        vector.forEach((value, index) => {
          worst = Math.max(worst, Math.abs(value - (alone.body.embeddings?.[text][index] ?? Number.NaN)));
        });
      });
    }
    expect(worst).toBeLessThanOrEqual(1e-6);
  });

  it(`serves a ${TEXTS_PER_REQUEST}-text request on the idle server although it is larger than the bound of ${MAX_QUEUE}`, async () => {
    const answer = await postTexts(baseUrl, requestTexts(0));
    expect(answer.status).toBe(200);
    expectWhole(answer.body.embeddings);
  });
});
