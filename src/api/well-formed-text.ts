import { ScalarType } from "@bufbuild/protobuf";
import type { DescMessage, JsonValue, Message } from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { configureTextEncoding } from "@bufbuild/protobuf/wire";
import type { Interceptor } from "@connectrpc/connect";
import { checkWellFormedText } from "../front-door/validate-request.js";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const lenientUtf8 = new TextDecoder("utf-8", { ignoreBOM: true });
/** U+FFFD as UTF-8: the one sequence a lenient decoder turns into U+FFFD without the input being at fault. */
const REPLACEMENT_CHARACTER_UTF8 = Buffer.from("\ufffd", "utf8");
/** What a byte sequence that is not UTF-8 decodes to: a lone (low) surrogate, never part of well-formed text. */
const NOT_UTF8_MARK = "\udcff";

/**
 * Decodes UTF-8 as the WHATWG decoder does (a leading BOM dropped), except
 * that each maximal run of bytes that is not UTF-8 becomes a lone surrogate
 * (U+DCFF) instead of U+FFFD, so the text stays recognisably ill-formed and
 * checkWellFormedText refuses it where it sits (naming its field and index),
 * while a U+FFFD the client really sent (EF BF BD) stays what it is. Valid
 * input costs one strict decode; invalid input one lenient decode per genuine
 * U+FFFD it holds, all native.
 */
export function decodeUtf8Marked(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    // Not UTF-8: marked below.
  }
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: string[] = [];
  // EF BF BD always decodes to a genuine U+FFFD (EF is no continuation byte), so the text splits around it.
  for (let from = 0; ; ) {
    const at = buffer.indexOf(REPLACEMENT_CHARACTER_UTF8, from);
    const part = lenientUtf8.decode(buffer.subarray(from, at === -1 ? buffer.byteLength : at));
    parts.push((from === 0 && part.startsWith("\ufeff") ? part.slice(1) : part).replaceAll("\ufffd", NOT_UTF8_MARK));
    if (at === -1) return parts.join("\ufffd");
    from = at + REPLACEMENT_CHARACTER_UTF8.byteLength;
  }
}

/**
 * Makes protobuf-es decode every string field of a binary message (gRPC,
 * gRPC-Web, Connect proto) with decodeUtf8Marked. protobuf-es decodes strings
 * with a lenient TextDecoder and has no per-call option, only this
 * process-wide hook; valid UTF-8 decodes exactly as before, and bytes that
 * are not UTF-8 no longer become a silent U+FFFD (a wrong vector) but text
 * that createWellFormedTextInterceptor refuses. Idempotent.
 */
export function decodeProtobufStringsMarked(): void {
  const encoder = new TextEncoder();
  configureTextEncoding({
    encodeUtf8: (text: string) => encoder.encode(text),
    decodeUtf8: decodeUtf8Marked,
    checkUtf8: (text: string) => text.isWellFormed(),
  });
}

/**
 * Checks every string of a parsed JSON value, object keys included, with
 * checkWellFormedText: the field is the dotted path of object keys
 * (`documents.text`; an ill-formed key is named by the object holding it), the
 * index the position in the innermost list holding it (`index` when no list
 * does). Breadth first with a queue, so deep nesting
 * costs no stack, and items are checked in order (the first bad one is named).
 */
export function checkWellFormedJson(value: JsonValue, index?: number): void {
  const queue: Array<{ value: JsonValue; field: string; index: number | undefined }> = [{ value, field: "", index }];
  for (let head = 0; head < queue.length; head++) {
    const { value: current, field, index: position } = queue[head];
    if (typeof current === "string") checkWellFormedText(current, field === "" ? "the request body" : field, position);
    else if (Array.isArray(current)) current.forEach((item, itemIndex) => queue.push({ value: item, field, index: itemIndex }));
    else if (current !== null && typeof current === "object") {
      for (const [key, item] of Object.entries(current)) {
        checkWellFormedText(key, field === "" ? "a field name" : `a field name in ${field}`, position);
        queue.push({ value: item, field: field === "" ? key : `${field}.${key}`, index: position });
      }
    }
  }
}

/**
 * Checks every string field of a decoded protobuf message (lists, maps and
 * nested messages included) with checkWellFormedText, naming the field by its
 * proto path (`texts`, `documents.text`, `chunk.text`); the index is the
 * position in the innermost repeated field holding it, else `index` (the
 * message's position in a request stream).
 */
export function checkWellFormedMessage(schema: DescMessage, message: Message, index?: number): void {
  const queue: Array<{ message: ReflectMessage; path: string; index: number | undefined }> = [{ message: reflect(schema, message), path: "", index }];
  for (let head = 0; head < queue.length; head++) {
    const { message: current, path, index: position } = queue[head];
    for (const field of current.fields) {
      if (!current.isSet(field)) continue;
      const name = path === "" ? field.name : `${path}.${field.name}`;
      switch (field.fieldKind) {
        case "scalar":
          if (field.scalar === ScalarType.STRING) checkWellFormedText(current.get(field) as string, name, position);
          break;
        case "message":
          queue.push({ message: current.get(field), path: name, index: position });
          break;
        case "list": {
          if (field.listKind !== "message" && !(field.listKind === "scalar" && field.scalar === ScalarType.STRING)) break;
          let itemIndex = 0;
          for (const item of current.get(field)) {
            if (typeof item === "string") checkWellFormedText(item, name, itemIndex);
            else queue.push({ message: item as ReflectMessage, path: name, index: itemIndex });
            itemIndex++;
          }
          break;
        }
        case "map":
          for (const [key, item] of current.get(field)) {
            if (typeof key === "string") checkWellFormedText(key, `a key of ${name}`, position);
            if (typeof item === "string") checkWellFormedText(item, name, position);
            else if (field.mapKind === "message") queue.push({ message: item as ReflectMessage, path: name, index: position });
          }
          break;
      }
    }
  }
}

/**
 * Server interceptor that refuses an rpc whose request holds a string that is
 * not well-formed (checkWellFormedMessage), on every RPC protocol: a unary
 * request before the handler runs, each message of a request stream as the
 * handler reads it (index = its position in the stream, the first being 0).
 * It throws domain errors, so it belongs inside the error interceptor.
 */
export function createWellFormedTextInterceptor(): Interceptor {
  return (next) => async (request) => {
    const schema = request.method.input;
    if (!request.stream) {
      checkWellFormedMessage(schema, request.message);
      return next(request);
    }
    const messages = request.message;
    return next({
      ...request,
      message: (async function* checkedMessages() {
        let index = 0;
        for await (const message of messages) {
          checkWellFormedMessage(schema, message, index++);
          yield message;
        }
      })(),
    });
  };
}
