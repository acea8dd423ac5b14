import { describe, expect, it } from "vitest";
import { createRateLimiter } from "../../src/admission/rate-limit.js";
import { EmbedderError } from "../../src/domain/errors.js";

function refused(run: () => void): EmbedderError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(EmbedderError);
    expect((error as EmbedderError).reason).toBe("RATE_LIMITED");
    return error as EmbedderError;
  }
  throw new Error("expected RATE_LIMITED");
}

describe("rate limiter", () => {
  it("allows a burst, then one request per 60/rpm seconds, per principal", () => {
    let now = 0;
    const limiter = createRateLimiter({ requestsPerMinute: 60, tokensPerMinute: 0, burst: 3 }, () => now);
    for (let index = 0; index < 3; index++) limiter.admit("a");
    const error = refused(() => limiter.admit("a"));
    expect(error.retryAfterMs).toBe(1000);
    expect(error.details).toEqual({ limit: "requests", per_minute: 60 });
    limiter.admit("b");
    now = 400;
    expect(refused(() => limiter.admit("a")).retryAfterMs).toBe(600);
    now = 1000;
    limiter.admit("a");
    refused(() => limiter.admit("a"));
    now = 10_000;
    for (let index = 0; index < 3; index++) limiter.admit("a");
    refused(() => limiter.admit("a"));
  });

  it("uses a minute's worth as the burst when burst is 0", () => {
    const limiter = createRateLimiter({ requestsPerMinute: 5, tokensPerMinute: 0, burst: 0 }, () => 0);
    for (let index = 0; index < 5; index++) limiter.admit("a");
    expect(refused(() => limiter.admit("a")).retryAfterMs).toBe(12_000);
  });

  it("admits while the token balance is positive and waits until a debt is repaid", () => {
    let now = 0;
    const limiter = createRateLimiter({ requestsPerMinute: 0, tokensPerMinute: 600, burst: 0 }, () => now);
    limiter.admit("a");
    limiter.charge("a", 500);
    limiter.admit("a");
    limiter.charge("a", 300);
    const error = refused(() => limiter.admit("a"));
    expect(error.details.limit).toBe("tokens");
    expect(error.retryAfterMs).toBe(20_100);
    now = 20_100;
    limiter.admit("a");
  });

  it("is disabled with both limits at 0", () => {
    const limiter = createRateLimiter({ requestsPerMinute: 0, tokensPerMinute: 0, burst: 5 });
    expect(limiter.enabled).toBe(false);
    for (let index = 0; index < 1000; index++) limiter.admit("a");
  });
});
