import { EmbedderError } from "../domain/errors.js";

/** How a request body is measured against the limit. */
export interface BodyLimit {
  maxBytes: number;
  /**
   * True for enveloped protocols (gRPC, gRPC-Web, Connect streaming): the
   * limit applies to each message, read from its 5-byte envelope header, so a
   * long-lived stream is not capped in total. False: the whole body counts.
   */
  enveloped: boolean;
  /** The `content-length` the client declared, if any. */
  declaredLength?: number;
}

/**
 * Passes a request body through while enforcing a size limit, failing with
 * PAYLOAD_TOO_LARGE (details: limit, size) as soon as a declared length, a
 * running total or an envelope header shows the limit is passed, so an
 * oversized body is never buffered. After a failure the rest of the body is
 * read and dropped in the background instead of the connection being reset:
 * an HTTP/1.1 client still uploading would otherwise see ECONNRESET instead
 * of the error answer, and an HTTP/2 stream would stall on flow control.
 */
export async function* limitBody(body: AsyncIterable<Uint8Array>, limit: BodyLimit): AsyncGenerator<Uint8Array> {
  const iterator = body[Symbol.asyncIterator]();
  let draining = false;
  const tooLarge = (size: number): EmbedderError => {
    draining = true;
    void (async () => {
      try {
        while (!(await iterator.next()).done);
      } catch {
        return;
      }
    })();
    return new EmbedderError("PAYLOAD_TOO_LARGE", `the request is larger than the limit of ${limit.maxBytes} bytes`, {
      details: { limit: limit.maxBytes, size },
    });
  };
  try {
    if (!limit.enveloped && limit.declaredLength !== undefined && limit.declaredLength > limit.maxBytes) {
      throw tooLarge(limit.declaredLength);
    }
    let total = 0;
    const header = new Uint8Array(5);
    let headerFilled = 0;
    let payloadLeft = 0;
    for (;;) {
      const next = await iterator.next();
      if (next.done === true) return;
      const chunk = next.value;
      total += chunk.byteLength;
      if (!limit.enveloped && total > limit.maxBytes) throw tooLarge(total);
      let offset = 0;
      while (limit.enveloped && offset < chunk.byteLength) {
        if (payloadLeft > 0) {
          const taken = Math.min(payloadLeft, chunk.byteLength - offset);
          payloadLeft -= taken;
          offset += taken;
          continue;
        }
        header[headerFilled] = chunk[offset];
        headerFilled += 1;
        offset += 1;
        if (headerFilled === header.byteLength) {
          payloadLeft = new DataView(header.buffer).getUint32(1);
          headerFilled = 0;
          if (payloadLeft > limit.maxBytes) throw tooLarge(payloadLeft);
        }
      }
      yield chunk;
    }
  } finally {
    if (!draining) await iterator.return?.();
  }
}

/** A `content-length` header as a byte count; undefined when absent or not a plain non-negative integer. */
export function parseContentLength(value: string | null | undefined): number | undefined {
  return value !== null && value !== undefined && /^\d+$/.test(value.trim()) ? Number(value) : undefined;
}
