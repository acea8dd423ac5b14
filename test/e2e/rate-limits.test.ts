import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { EmbedderService } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { startRealService, type RunningService } from "../support/real-service.js";

const KEY_A = "sk-a-0123456789";
const KEY_B = "sk-b-0123456789";

let running: RunningService | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function embed(key: string, texts: string[] = ["hello"]): Promise<{ status: number; retryAfter: string | null; body: any; ms: number }> {
  const started = performance.now();
  const response = await fetch(`${running!.baseUrl}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": key },
    body: JSON.stringify({ texts }),
  });
  const body = await response.json();
  return { status: response.status, retryAfter: response.headers.get("retry-after"), body, ms: performance.now() - started };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("per-principal rate limits (real server)", () => {
  it("RPM with a burst: the burst passes, the next request is 429 with Retry-After, other keys are unaffected, and after the wait it passes", async () => {
    // 20 per minute = one request every 3 s, so a slow machine does not refill the bucket during the burst.
    running = await startRealService({ authMode: "api-key", apiKeys: `${KEY_A},${KEY_B}`, rateLimitRpm: 20, rateLimitBurst: 3 });
    for (let index = 0; index < 3; index++) expect((await embed(KEY_A)).status).toBe(200);
    const refused = await embed(KEY_A);
    expect(refused.status).toBe(429);
    const wait = Number(refused.retryAfter);
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(3);
    expect(refused.body.error).toMatchObject({ code: "RATE_LIMITED", type: "rate_limit_error", details: { limit: "requests", per_minute: 20 } });
    expect((await embed(KEY_B)).status).toBe(200);
    await sleep(wait * 1000 + 50);
    expect((await embed(KEY_A)).status).toBe(200);
    expect((await embed(KEY_A)).status).toBe(429);
  });

  it("gRPC gets RESOURCE_EXHAUSTED with retry-after when the RPM is spent", async () => {
    running = await startRealService({ authMode: "api-key", apiKeys: KEY_A, rateLimitRpm: 6, rateLimitBurst: 1 });
    const client = createClient(EmbedderService, createGrpcTransport({ baseUrl: running.baseUrl }));
    const options = { headers: { "x-api-key": KEY_A } };
    await client.generateEmbeddings({ texts: ["a"] }, options);
    const error = await client.generateEmbeddings({ texts: ["a"] }, options).then(() => undefined, (reason: unknown) => reason);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.ResourceExhausted);
    const wait = Number((error as ConnectError).metadata.get("retry-after"));
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(10);
  });

  it("TPM: requests pass while tokens remain, then 429 until the spent tokens have refilled", async () => {
    // 6,000 tokens per minute = 100 per second; a long text is cut to the model's 128-token window.
    running = await startRealService({ authMode: "api-key", apiKeys: KEY_A, rateLimitTpm: 6000 });
    const long = (count: number) => Array.from({ length: count }, (_, index) => `${index} ${"lorem ipsum dolor sit amet ".repeat(40)}`);
    const first = await embed(KEY_A, long(40));
    expect(first.status).toBe(200);
    // Enough debt (~1,700 tokens, ~17 s of refill) that a slow machine does not repay it while the requests run.
    const second = await embed(KEY_A, long(20));
    expect(second.status).toBe(200);
    const used = (first.body.usage.prompt_tokens as number) + (second.body.usage.prompt_tokens as number);
    expect(used).toBeGreaterThan(6000);
    const refused = await embed(KEY_A, ["short"]);
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({ code: "RATE_LIMITED", details: { limit: "tokens", per_minute: 6000 } });
    const wait = Number(refused.retryAfter);
    // The balance is 6000 - used plus what refilled meanwhile; the wait is what refills it above zero at 100 tokens/s.
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(Math.ceil((used - 6000) / 100) + 1);
    await sleep(wait * 1000 + 100);
    expect((await embed(KEY_A, ["short"])).status).toBe(200);
  }, 60_000);

  it("SUTRA_MAX_CONCURRENCY turns excess requests away at once with OVERLOADED", async () => {
    running = await startRealService({ maxConcurrency: 1 });
    const big = Array.from({ length: 128 }, (_, index) => `text number ${index} ${"word ".repeat(60)}`);
    let bigDone = false;
    const slow = embed("", big).finally(() => {
      bigDone = true;
    });
    // While the big request holds the only slot, small ones are refused at once (not queued behind it).
    const refusals: Array<Awaited<ReturnType<typeof embed>>> = [];
    while (!bigDone) {
      const answer = await embed("", ["x"]);
      if (answer.status === 429) refusals.push(answer);
      else expect(answer.status).toBe(200);
    }
    expect(refusals.length).toBeGreaterThan(0);
    for (const refused of refusals) {
      expect(refused.body.error).toMatchObject({ code: "OVERLOADED", details: { limit: 1 } });
      expect(refused.retryAfter).toBe("1");
    }
    expect((await slow).status).toBe(200);
    expect((await embed("", ["x"])).status).toBe(200);
  });
});
