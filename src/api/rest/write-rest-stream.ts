import { create } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { EmbedderError } from "../../domain/errors.js";
import type { NodeRequest, NodeResponse } from "../node-types.js";
import { logEmbedderError } from "../to-connect-error.js";
import { messageToRestJson } from "./rest-json.js";
import { restErrorEnvelope } from "./write-rest-error.js";

/** How a server stream is written over REST. */
export type RestStreamFormat = "ndjson" | "sse";

/** Content types of the two formats. */
export const REST_STREAM_CONTENT_TYPES: { readonly [F in RestStreamFormat]: string } = {
  ndjson: "application/x-ndjson; charset=utf-8",
  sse: "text/event-stream; charset=utf-8",
};

/**
 * The format an `Accept` header asks for: SSE when `text/event-stream` has a
 * higher quality than `application/x-ndjson` (a type not named counts 0,
 * wildcards count for both), NDJSON otherwise, also when Accept is absent or
 * names neither.
 */
export function negotiateStreamFormat(accept: string | undefined): RestStreamFormat {
  const quality = { ndjson: 0, sse: 0 };
  for (const range of (accept ?? "").split(",")) {
    const [type = "", ...parameters] = range.split(";").map((part) => part.trim().toLowerCase());
    const q = Number(parameters.find((parameter) => parameter.startsWith("q="))?.slice(2) ?? 1);
    const weight = Number.isFinite(q) ? q : 0;
    if (type === "application/x-ndjson" || type === "application/*" || type === "*/*") quality.ndjson = Math.max(quality.ndjson, weight);
    if (type === "text/event-stream" || type === "text/*" || type === "*/*") quality.sse = Math.max(quality.sse, weight);
  }
  return quality.sse > quality.ndjson ? "sse" : "ndjson";
}

/** The REST call a stream answers. */
export interface RestStreamCall {
  request: NodeRequest;
  response: NodeResponse;
  requestId: string;
  logger: Logger;
}

/**
 * Writes a server-streaming rpc's messages as REST: NDJSON (one JSON object
 * per line) or SSE (one `data:` event per message), by `Accept`, each message
 * in the REST JSON mapping, flushed as it comes. The first message is awaited
 * before anything is written, so a failure before it (a bad request, an
 * unknown model) is thrown for the REST error envelope with its own status. A
 * failure after it can only travel in the body: a last record holding the
 * REST error envelope (SSE: `event: error`).
 * Writing honours backpressure (the next message is taken only once the
 * client has taken the previous ones), and a client that goes away stops the
 * stream.
 */
export async function writeRestStream<Output extends DescMessage>(
  call: RestStreamCall,
  schema: Output,
  messages: AsyncIterable<MessageInitShape<Output>>,
): Promise<void> {
  const { response } = call;
  let gone = false;
  response.once("close", () => (gone = !response.writableFinished));
  const write = (text: string): Promise<boolean> => {
    if (gone) return Promise.resolve(false);
    if ((response as { write(chunk: string): boolean }).write(text)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const settle = () => {
        response.off("drain", settle);
        response.off("close", settle);
        resolve(!gone);
      };
      response.on("drain", settle);
      response.on("close", settle);
    });
  };
  const format = negotiateStreamFormat(headerOf(call.request, "accept"));
  const iterator = messages[Symbol.asyncIterator]();
  let next = await iterator.next();
  response.statusCode = 200;
  response.setHeader("content-type", REST_STREAM_CONTENT_TYPES[format]);
  response.setHeader("cache-control", "no-cache");
  response.setHeader("x-accel-buffering", "no");
  try {
    while (next.done !== true) {
      const json = messageToRestJson(schema, create(schema, next.value));
      if (!(await write(record(format, undefined, JSON.stringify(json))))) return;
      next = await iterator.next();
    }
  } catch (reason) {
    const error = EmbedderError.from(reason);
    if (gone) return;
    logEmbedderError(call.logger, error, { requestId: call.requestId, stream: format });
    await write(record(format, "error", JSON.stringify(restErrorEnvelope(error, call.requestId))));
  } finally {
    await iterator.return?.();
  }
  if (!gone) response.end();
}

function record(format: RestStreamFormat, event: string | undefined, json: string): string {
  if (format === "ndjson") return `${json}\n`;
  return `${event === undefined ? "" : `event: ${event}\n`}data: ${json}\n\n`;
}

function headerOf(request: NodeRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}
