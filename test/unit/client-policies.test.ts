import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { failureFacts, isRetryable, RETRYABLE_REASONS } from "../../src/client/errors.js";
import { DEFAULT_RETRY_OPTIONS, retryDelayMs } from "../../src/client/retry.js";
import { similarityMatrix, nearestNeighbours, cosineSimilarity } from "../../src/client/similarity.js";
import { splitInputs, textCost } from "../../src/client/split-inputs.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/** A ConnectError as the SDK receives it from the Sutra server: code, ErrorInfo reason, retry-after. */
function serverError(code: Code, reason: string, retryAfterSeconds?: number): ConnectError {
  const error = new ConnectError(`forced ${reason}`, code, retryAfterSeconds === undefined ? undefined : { "retry-after": String(retryAfterSeconds) });
  const info = anyPack(ErrorInfoSchema, create(ErrorInfoSchema, { reason, domain: "sutra.embedder.v1", metadata: { limit: "2048" } }));
  error.details = [{ type: "google.rpc.ErrorInfo", value: info.value, debug: undefined }];
  return error;
}

/** A failure below the service, as connect-node builds it from a Node HTTP/2 error. */
function streamReset(h2Code: string): ConnectError {
  const cause = Object.assign(new Error(`Stream closed with error code ${h2Code}`), { code: "ERR_HTTP2_STREAM_ERROR" });
  return new ConnectError(`Stream closed with error code ${h2Code}`, Code.Internal, undefined, undefined, cause);
}

describe("SDK retry policy", () => {
  it.each(RETRYABLE_REASONS)("retries %s from the server", (reason) => {
    const facts = failureFacts(serverError(reason === "OVERLOADED" || reason === "RATE_LIMITED" ? Code.ResourceExhausted : Code.Unavailable, reason));
    expect(facts.reason).toBe(reason);
    expect(isRetryable(facts, { reasons: RETRYABLE_REASONS, idempotent: true })).toBe(true);
  });

  it.each([
    [Code.ResourceExhausted, "PAYLOAD_TOO_LARGE"],
    [Code.InvalidArgument, "INVALID_ARGUMENT"],
    [Code.InvalidArgument, "INVALID_DIMENSIONS"],
    [Code.InvalidArgument, "TOO_MANY_INPUTS"],
    [Code.Unavailable, "UPSTREAM_BAD_RESPONSE"],
    [Code.Unavailable, "MODEL_NOT_READY"],
    [Code.Internal, "INTERNAL"],
  ])("never retries %s %s, whatever the code", (code, reason) => {
    const facts = failureFacts(serverError(code, reason));
    expect(facts.transport).toBe(false);
    expect(isRetryable(facts, { reasons: RETRYABLE_REASONS, idempotent: true })).toBe(false);
  });

  it("reads retry-after (seconds) and ErrorInfo metadata", () => {
    const facts = failureFacts(serverError(Code.ResourceExhausted, "OVERLOADED", 3));
    expect(facts).toMatchObject({ code: Code.ResourceExhausted, reason: "OVERLOADED", retryAfterMs: 3000, details: { limit: "2048" } });
  });

  it("REFUSED_STREAM (no work done) is retried even for calls that are not idempotent", () => {
    const facts = failureFacts(streamReset("NGHTTP2_REFUSED_STREAM"));
    expect(facts).toMatchObject({ code: Code.Internal, refused: true, transport: true });
    expect(isRetryable(facts, { reasons: RETRYABLE_REASONS, idempotent: false })).toBe(true);
  });

  it("a reset stream or a refused connection without a reason is retried for idempotent calls only", () => {
    for (const error of [streamReset("NGHTTP2_INTERNAL_ERROR"), new ConnectError("connect ECONNREFUSED 127.0.0.1:1", Code.Unavailable)]) {
      const facts = failureFacts(error);
      expect(facts.transport).toBe(true);
      expect(isRetryable(facts, { reasons: RETRYABLE_REASONS, idempotent: true })).toBe(true);
      expect(isRetryable(facts, { reasons: RETRYABLE_REASONS, idempotent: false })).toBe(false);
    }
    expect(failureFacts(new ConnectError("the call was cancelled", Code.Canceled)).transport).toBe(false);
  });

  it("waits at least the server's retry-after, else a jittered doubling backoff under the cap", () => {
    const facts = failureFacts(serverError(Code.Unavailable, "SHUTTING_DOWN", 2));
    expect(retryDelayMs(1, facts, DEFAULT_RETRY_OPTIONS, () => 0)).toBe(2000);
    const none = failureFacts(serverError(Code.Unavailable, "WORKER_FAILED"));
    expect([1, 2, 3].map((retry) => retryDelayMs(retry, none, DEFAULT_RETRY_OPTIONS, () => 1))).toEqual([100, 200, 400]);
    expect(retryDelayMs(1, none, DEFAULT_RETRY_OPTIONS, () => 0)).toBe(50);
    expect(retryDelayMs(20, none, DEFAULT_RETRY_OPTIONS, () => 1)).toBe(DEFAULT_RETRY_OPTIONS.maxBackoffMs);
  });
});

describe("SDK input splitting", () => {
  it("cuts by count and keeps order", () => {
    expect(splitInputs(Array.from({ length: 10_000 }, (_, index) => String(index)), { maxInputs: 2048, maxRequestBytes: 4 << 20 })).toEqual([
      { start: 0, count: 2048 },
      { start: 2048, count: 2048 },
      { start: 4096, count: 2048 },
      { start: 6144, count: 2048 },
      { start: 8192, count: 1808 },
    ]);
  });

  it("cuts by bytes, counting escapes and UTF-8, with room for the other fields", () => {
    const texts = Array.from({ length: 100 }, () => "é\"".repeat(1000));
    const parts = splitInputs(texts, { maxInputs: 2048, maxRequestBytes: 64 * 1024 });
    for (const part of parts) expect(texts.slice(part.start, part.start + part.count).reduce((sum, text) => sum + textCost(text), 0)).toBeLessThanOrEqual(48 * 1024);
    expect(parts.reduce((sum, part) => sum + part.count, 0)).toBe(100);
    expect(textCost("é\"")).toBe(new TextEncoder().encode(JSON.stringify("é\"")).byteLength + 8);
  });

  it("gives a text too large for any request a part of its own", () => {
    expect(splitInputs(["a", "x".repeat(100_000), "b"], { maxInputs: 10, maxRequestBytes: 20_000 })).toEqual([
      { start: 0, count: 1 },
      { start: 1, count: 1 },
      { start: 2, count: 1 },
    ]);
  });
});

describe("similarity helpers", () => {
  it("cosine, the matrix and nearest neighbours", () => {
    const vectors = [[1, 0], [0.6, 0.8], [-1, 0]];
    expect(cosineSimilarity([1, 0], [2, 0])).toBe(1);
    expect(cosineSimilarity([0, 0], [1, 0])).toBe(0);
    const matrix = similarityMatrix(vectors);
    expect(matrix[0]).toEqual([1, 0.6, -1]);
    expect(nearestNeighbours(matrix, 1)).toEqual([[{ index: 1, similarity: 0.6 }], [{ index: 0, similarity: 0.6 }], [{ index: 1, similarity: -0.6 }]]);
  });
});
