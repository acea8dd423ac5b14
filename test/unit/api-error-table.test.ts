import { readFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ERROR_DOMAIN, ERROR_TABLE, retryAfterSeconds } from "../../src/api/error-table.js";
import { toConnectError } from "../../src/api/to-connect-error.js";
import { EmbedderError, ERROR_REASONS } from "../../src/domain/errors.js";
import type { ErrorReason } from "../../src/domain/errors.js";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/** The documented error table (docs/ERRORS.md), spelled out a second time so a change to either side is caught. */
const DOCUMENTED_TABLE: Record<ErrorReason, [Code, number, boolean]> = {
  EMPTY_INPUT: [Code.InvalidArgument, 400, false],
  TOO_MANY_INPUTS: [Code.InvalidArgument, 400, false],
  INVALID_DIMENSIONS: [Code.InvalidArgument, 400, false],
  INVALID_ARGUMENT: [Code.InvalidArgument, 400, false],
  INPUT_TOO_LONG: [Code.InvalidArgument, 400, false],
  PAYLOAD_TOO_LARGE: [Code.ResourceExhausted, 413, false],
  UNSUPPORTED_MEDIA_TYPE: [Code.InvalidArgument, 415, false],
  UNAUTHENTICATED: [Code.Unauthenticated, 401, false],
  FORBIDDEN: [Code.PermissionDenied, 403, false],
  ORIGIN_NOT_ALLOWED: [Code.PermissionDenied, 403, false],
  MISDIRECTED_REQUEST: [Code.PermissionDenied, 421, false],
  UNKNOWN_MODEL: [Code.NotFound, 404, false],
  JOB_NOT_FOUND: [Code.NotFound, 404, false],
  ROUTE_NOT_FOUND: [Code.NotFound, 404, false],
  RATE_LIMITED: [Code.ResourceExhausted, 429, true],
  OVERLOADED: [Code.ResourceExhausted, 429, true],
  TOO_MANY_STREAMS: [Code.ResourceExhausted, 429, true],
  CANCELLED: [Code.Canceled, 499, false],
  NOT_IMPLEMENTED: [Code.Unimplemented, 501, false],
  MODEL_NOT_READY: [Code.Unavailable, 503, false],
  WORKER_FAILED: [Code.Unavailable, 503, true],
  UPSTREAM_UNAVAILABLE: [Code.Unavailable, 503, true],
  SHUTTING_DOWN: [Code.Unavailable, 503, true],
  UPSTREAM_BAD_RESPONSE: [Code.Unavailable, 502, false],
  DEADLINE_EXCEEDED: [Code.DeadlineExceeded, 504, false],
  DATA_DAMAGED: [Code.DataLoss, 500, false],
  INTERNAL: [Code.Internal, 500, false],
};

/** gRPC's canonical code names, indexed by code number. */
const GRPC_CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
  "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

describe("error table", () => {
  it.each(ERROR_REASONS)("maps %s to the code, HTTP status and retryability of the documented error table (docs/ERRORS.md)", (reason) => {
    const [code, status, retryable] = DOCUMENTED_TABLE[reason];
    expect(ERROR_TABLE[reason]).toEqual({ code, httpStatus: status, retryable });
  });

  it("has a row for every reason and nothing else", () => {
    expect(Object.keys(ERROR_TABLE).sort()).toEqual([...ERROR_REASONS].sort());
  });

  it.each(ERROR_REASONS)("turns %s into a ConnectError with an ErrorInfo detail", (reason) => {
    const error = toConnectError(
      new EmbedderError(reason, `message for ${reason}`, { details: { index: 3, ids: [1, 2], ok: false } }),
    );
    expect(error).toBeInstanceOf(ConnectError);
    expect(error.code).toBe(ERROR_TABLE[reason].code);
    expect(error.rawMessage).toBe(`message for ${reason}`);
    const [info] = error.findDetails(ErrorInfoSchema);
    expect(info.reason).toBe(reason);
    expect(info.domain).toBe(ERROR_DOMAIN);
    expect(info.metadata).toEqual({ index: "3", ids: "1,2", ok: "false" });
  });

  it.each(["OVERLOADED", "RATE_LIMITED"] as const)("always tells the client when to retry %s", (reason) => {
    const unnamed = toConnectError(new EmbedderError(reason, "busy"));
    expect(unnamed.metadata.get("retry-after")).toBe("1");
    expect(unnamed.findDetails(RetryInfoSchema)[0].retryDelay?.seconds).toBe(1n);
    const named = toConnectError(new EmbedderError(reason, "busy", { retryAfterMs: 2001 }));
    expect(named.metadata.get("retry-after")).toBe("3");
  });

  it("adds no retry hint to errors that are not worth retrying", () => {
    const error = toConnectError(new EmbedderError("EMPTY_INPUT", "no texts"));
    expect(error.metadata.get("retry-after")).toBeNull();
    expect(error.findDetails(RetryInfoSchema)).toHaveLength(0);
    expect(retryAfterSeconds(new EmbedderError("INTERNAL", "bug"))).toBeUndefined();
    expect(retryAfterSeconds(new EmbedderError("SHUTTING_DOWN", "bye", { retryAfterMs: 10 }))).toBe(1);
  });

  it("keeps the original error as the cause and out of the message", () => {
    const wrapped = EmbedderError.from(new Error("/secret/path.ts:12 exploded"));
    const error = toConnectError(wrapped);
    expect(error.code).toBe(Code.Internal);
    expect(error.rawMessage).toBe("internal error");
    expect(error.cause).toBe(wrapped);
  });

  describe("docs/ERRORS.md", () => {
    const docs = readFileSync(new URL("../../docs/ERRORS.md", import.meta.url), "utf8");
    const rows = new Map(
      [...docs.matchAll(/^\| ([A-Z_]+) \| ([A-Z_]+) \((\d+)\) \| (\d{3}) \| (yes|no) \|/gm)].map((match) => [
        match[1],
        { name: match[2], code: Number(match[3]), status: Number(match[4]), retryable: match[5] === "yes" },
      ]),
    );

    it.each(ERROR_REASONS)("lists %s with its code, HTTP status and retryability", (reason) => {
      const row = rows.get(reason);
      expect(row, `docs/ERRORS.md has no row for ${reason}`).toBeDefined();
      expect(row?.code).toBe(ERROR_TABLE[reason].code);
      expect(row?.status).toBe(ERROR_TABLE[reason].httpStatus);
      expect(row?.retryable).toBe(ERROR_TABLE[reason].retryable);
      expect(row?.name).toBe(GRPC_CODE_NAMES[ERROR_TABLE[reason].code]);
    });

    it("lists no reason the service does not have", () => {
      expect([...rows.keys()].filter((reason) => !(ERROR_REASONS as readonly string[]).includes(reason))).toEqual([]);
    });
  });
});
