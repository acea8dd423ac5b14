import { randomUUID } from "node:crypto";
import { createContextKey } from "@connectrpc/connect";
import type { HandlerContext } from "@connectrpc/connect";
import type { EmbedRequest, EmbedResult, RunInfo, StageTimings } from "../domain/types.js";
import { principalKey } from "./access-policy.js";

/** Request header that routes a request to an upstream provider (docs/PROVIDERS.md), as a `provider:` model prefix does. */
export const PROVIDER_HEADER = "x-provider";

/**
 * Who produced the vectors (docs/PROVIDERS.md): `x-embeddings-provider` (`local`
 * or the upstream provider's name) and, when a fallback produced them,
 * `x-embeddings-fallback-from` naming the provider first asked.
 */
export function providerHeaders(run: Pick<RunInfo, "provider" | "fallbackFrom">): Record<string, string> {
  return {
    "x-embeddings-provider": run.provider,
    ...(run.fallbackFrom === undefined ? {} : { "x-embeddings-fallback-from": run.fallbackFrom }),
  };
}

/**
 * Who sent a call and where it asked to go, as request fields: the principal
 * the access check admitted, the `x-provider` header (absent when not sent) and
 * the early admission the request holds (REST embedding routes).
 */
export function callerOf(context: HandlerContext): Pick<EmbedRequest, "principal" | "provider" | "admission"> {
  return {
    principal: context.values.get(principalKey),
    provider: context.requestHeader.get(PROVIDER_HEADER) ?? undefined,
    admission: context.values.get(admissionKey),
  };
}

/** Context value holding the early admission (Embedder.reserve) of a REST embedding request, when it has one. */
export const admissionKey = createContextKey<EmbedRequest["admission"]>(undefined, { description: "sutra early admission" });

/** Header that carries the request id in both directions. */
export const REQUEST_ID_HEADER = "x-request-id";

/**
 * Context value holding the request id of the call, so service implementations
 * see the same id as the `x-request-id` response header and the logs, whatever
 * the transport (Connect router or REST transcoder).
 */
export const requestIdKey = createContextKey<string>("", { description: "sutra request id" });

/**
 * The request id of a call as its handler sees it. The server sets it for every
 * request; a handler invoked without one (an in-memory router in tests) gets a
 * fresh id, stored so that every later look-up agrees.
 */
export function requestIdOf(context: HandlerContext): string {
  const known = context.values.get(requestIdKey);
  if (known !== "") return known;
  const fresh = randomUUID();
  context.values.set(requestIdKey, fresh);
  return fresh;
}

const SANE_REQUEST_ID = /^[A-Za-z0-9._:@\/+=-]{1,128}$/;

/**
 * The request id of a call: the client's `x-request-id` when it is sane (1..128
 * visible token characters, so it is safe in logs and headers), otherwise a
 * fresh UUID. Echoing a client's id lets it correlate its own logs with ours.
 */
export function resolveRequestId(clientValue: string | string[] | undefined | null): string {
  const value = Array.isArray(clientValue) ? clientValue[0] : clientValue;
  return value !== undefined && value !== null && SANE_REQUEST_ID.test(value) ? value : randomUUID();
}

/**
 * The timing headers Hugging Face TEI sends, in whole milliseconds as TEI does:
 * `x-total-time`, `x-tokenization-time`, `x-queue-time`, `x-inference-time`.
 */
export function timingHeaders(timings: StageTimings): Record<string, string> {
  return {
    "x-total-time": String(Math.round(timings.totalMs)),
    "x-tokenization-time": String(Math.round(timings.tokenizationMs)),
    "x-queue-time": String(Math.round(timings.queueMs)),
    "x-inference-time": String(Math.round(timings.inferenceMs)),
  };
}

/** Response header naming how `dimensions` was honoured (the Embeddings API guide's name). */
export const DIMENSIONS_POLICY_HEADER = "x-embeddings-dimensions-policy";

/**
 * The headers of an embedding answer (REST, Connect, gRPC and the OpenAI
 * dialect alike): the TEI timings (timingHeaders), who produced the vectors
 * (providerHeaders) and `x-embeddings-dimensions-policy`, the policy applied
 * (`native`, `matryoshka`, `reduce`, `pad`, `ignore`; `upstream` for a provider's own resizing).
 */
export function answerHeaders(result: Pick<EmbedResult, "timings" | "run" | "dimensionsPolicy">): Record<string, string> {
  return { ...timingHeaders(result.timings), ...providerHeaders(result.run), [DIMENSIONS_POLICY_HEADER]: result.dimensionsPolicy };
}
