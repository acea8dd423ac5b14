import { describe, expect, it } from "vitest";
import { limitBody, parseContentLength } from "../../src/api/limit-body.js";
import { EmbedderError } from "../../src/domain/errors.js";

/** A message in the gRPC / Connect envelope: flags byte, 4-byte big-endian length, payload. */
function envelope(size: number): Uint8Array {
  const bytes = new Uint8Array(5 + size).fill(7);
  bytes[0] = 0;
  new DataView(bytes.buffer).setUint32(1, size);
  return bytes;
}

/** Cuts bytes into chunks of the given sizes (the rest as one last chunk). */
function chunked(bytes: Uint8Array, ...sizes: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const size of sizes) {
    chunks.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  if (offset < bytes.length) chunks.push(bytes.subarray(offset));
  return chunks;
}

/** A body source that records how far it was read. */
function source(chunks: Uint8Array[]) {
  const state = { read: 0, returned: false };
  const body: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]() {
      return {
        async next() {
          if (state.read === chunks.length) return { done: true, value: undefined };
          state.read += 1;
          return { done: false, value: chunks[state.read - 1] };
        },
        async return() {
          state.returned = true;
          return { done: true, value: undefined };
        },
      };
    },
  };
  return { body, state };
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<number> {
  let total = 0;
  for await (const chunk of body) total += chunk.byteLength;
  return total;
}

async function rejection(body: AsyncIterable<Uint8Array>): Promise<EmbedderError> {
  try {
    await collect(body);
  } catch (error) {
    if (error instanceof EmbedderError) return error;
    throw error;
  }
  throw new Error("the body was accepted");
}

describe("limitBody", () => {
  it("passes a whole body of exactly the limit", async () => {
    const { body } = source([new Uint8Array(60), new Uint8Array(40)]);
    expect(await collect(limitBody(body, { maxBytes: 100, enveloped: false }))).toBe(100);
  });

  it("stops a whole body one byte over the limit and drains the rest instead of resetting", async () => {
    const { body, state } = source([new Uint8Array(60), new Uint8Array(41), new Uint8Array(500), new Uint8Array(500)]);
    const error = await rejection(limitBody(body, { maxBytes: 100, enveloped: false }));
    expect(error.reason).toBe("PAYLOAD_TOO_LARGE");
    expect(error.details).toEqual({ limit: 100, size: 101 });
    await expect.poll(() => state.read).toBe(4);
    expect(state.returned).toBe(false);
  });

  it("refuses a declared content-length over the limit before reading", async () => {
    const { body, state } = source([new Uint8Array(10)]);
    const error = await rejection(limitBody(body, { maxBytes: 5, enveloped: false, declaredLength: 10 }));
    expect(error.details).toEqual({ limit: 5, size: 10 });
    await expect.poll(() => state.read).toBe(1);
  });

  it("limits each enveloped message, not the stream, with headers split across chunks", async () => {
    const stream = new Uint8Array([...envelope(100), ...envelope(100), ...envelope(3)]);
    const { body } = source(chunked(stream, 2, 1, 104, 3, 50));
    expect(await collect(limitBody(body, { maxBytes: 100, enveloped: true }))).toBe(stream.length);
  });

  it("stops at the envelope header of an oversized message, before its payload arrives", async () => {
    const stream = new Uint8Array([...envelope(10), ...envelope(101)]);
    const { body } = source(chunked(stream, 15, 3, 2));
    const seen: number[] = [];
    const error = await rejection(
      (async function* () {
        for await (const chunk of limitBody(body, { maxBytes: 100, enveloped: true })) {
          seen.push(chunk.byteLength);
          yield chunk;
        }
      })(),
    );
    expect(error.details).toEqual({ limit: 100, size: 101 });
    expect(seen).toEqual([15, 3]);
  });

  it("lets the source go when the reader stops early", async () => {
    const { body, state } = source([new Uint8Array(1), new Uint8Array(1)]);
    for await (const _chunk of limitBody(body, { maxBytes: 10, enveloped: false })) break;
    expect(state.returned).toBe(true);
  });

  it.each([
    ["123", 123],
    [" 7 ", 7],
    ["0", 0],
    [null, undefined],
    [undefined, undefined],
    ["", undefined],
    ["-1", undefined],
    ["1e3", undefined],
    ["12abc", undefined],
  ])("reads content-length %j as %j", (header, expected) => {
    expect(parseContentLength(header)).toBe(expected);
  });
});
