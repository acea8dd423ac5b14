/** The server's request limits the SDK splits inputs to. */
export interface RequestLimits {
  /** Most texts in one request: the server's `SUTRA_MAX_INPUTS` (default 2048). */
  maxInputs: number;
  /** Largest request body or message: the server's `SUTRA_MAX_BODY_BYTES` (default 4 MiB). */
  maxRequestBytes: number;
}

/** The server's defaults (`SUTRA_MAX_INPUTS`, `SUTRA_MAX_BODY_BYTES`; docs/AUTH.md, "Request limits"). */
export const DEFAULT_REQUEST_LIMITS: RequestLimits = { maxInputs: 2048, maxRequestBytes: 4 * 1024 * 1024 };

/** Bytes kept free in every request for the fields other than the texts (model, config, instruction...). */
const REQUEST_OVERHEAD_BYTES = 16 * 1024;

/** A part of the inputs: `texts[start .. start + count)`. */
export interface InputPart {
  start: number;
  count: number;
}

const encoder = new TextEncoder();

/**
 * Bytes one text costs in a request, whatever the protocol: its JSON string
 * form in UTF-8 (quotes and escapes included) plus a few bytes of framing.
 * That is at least its size in the binary protobuf encoding (length prefix +
 * UTF-8) and in the Connect JSON encoding, so a part that fits by this count
 * fits on every protocol.
 */
export function textCost(text: string): number {
  return encoder.encode(JSON.stringify(text)).byteLength + 8;
}

/**
 * Cuts `texts` into consecutive parts, each within the limits: at most
 * `maxInputs` texts and, texts and overhead together, at most
 * `maxRequestBytes`. Order is kept, so answers concatenated part after part
 * are in input order. A single text too large for any request gets a part of
 * its own (the server then answers PAYLOAD_TOO_LARGE, which is final).
 */
export function splitInputs(texts: readonly string[], limits: RequestLimits): InputPart[] {
  const parts: InputPart[] = [];
  const budget = Math.max(1, limits.maxRequestBytes - REQUEST_OVERHEAD_BYTES);
  let start = 0;
  let bytes = 0;
  for (let index = 0; index < texts.length; index += 1) {
    const cost = textCost(texts[index]);
    const count = index - start;
    if (count > 0 && (count >= limits.maxInputs || bytes + cost > budget)) {
      parts.push({ start, count });
      start = index;
      bytes = 0;
    }
    bytes += cost;
  }
  if (texts.length > start) parts.push({ start, count: texts.length - start });
  return parts;
}
