import type { ProviderConfig } from "./provider-config.js";
import { retryAfterMs } from "./retry-policy.js";

/** How an upstream call failed: an HTTP error status, no answer in time, no connection, or an answer we cannot use. */
export type UpstreamFailureKind = "http" | "timeout" | "network" | "bad_response";

/**
 * A failed upstream call, as the gateway classifies it for retries, the
 * breaker and metrics. `detail` (a status line, a parse problem, the start of
 * the upstream's error body) is for logs only; it never reaches a client.
 */
export class UpstreamFailure extends Error {
  readonly kind: UpstreamFailureKind;
  readonly status?: number;
  readonly retryAfterMs?: number;
  readonly detail: string;

  constructor(kind: UpstreamFailureKind, detail: string, options: { status?: number; retryAfterMs?: number; cause?: unknown } = {}) {
    super(`upstream ${kind}${options.status === undefined ? "" : ` ${options.status}`}`, { cause: options.cause });
    this.name = "UpstreamFailure";
    this.kind = kind;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
    this.detail = detail;
  }
}

/** One upstream call: texts (already split to the provider's max batch) for one model. */
export interface UpstreamCall {
  texts: string[];
  model: string;
  /** Reduced size asked of providers that support it (OpenAI's `dimensions`); absent = native. */
  dimensions?: number;
  signal?: AbortSignal;
}

/** An upstream's answer: one vector per text, in order, and the tokens it reports having used. */
export interface UpstreamAnswer {
  vectors: Float32Array[];
  promptTokens?: number;
}

/** Speaks one provider's embedding API. */
export interface UpstreamClient {
  embed(call: UpstreamCall): Promise<UpstreamAnswer>;
}

/** Longest part of an upstream error body kept for logs. */
const DETAIL_CHARS = 300;

/**
 * Creates the client of a provider by its type:
 * - `openai-compatible`: `POST {base_url}/embeddings` {model, input, encoding_format: float, dimensions?}
 *   -> `data[].embedding` ordered by `data[].index`, `usage.prompt_tokens`;
 * - `tei`: `POST {base_url}/embed` {inputs, truncate: true} -> `number[][]`;
 * - `hf-inference`: `POST {base_url}/models/{model}/pipeline/feature-extraction` {inputs} -> `number[][]`.
 * The key goes in `Authorization: Bearer`. Each call times out after the
 * provider's `timeout_ms`; an aborted `signal` rejects with its reason.
 */
export function createUpstreamClient(provider: ProviderConfig, apiKey: string | undefined, fetchImpl: typeof fetch = fetch): UpstreamClient {
  // An upstream (or a proxy before it) may echo the request in an error body; the key must not reach the logs that way.
  const scrub = (text: string) => (apiKey === undefined ? text : text.split(apiKey).join("<redacted>")).slice(0, DETAIL_CHARS);
  const post = async (url: string, body: unknown, signal?: AbortSignal): Promise<unknown> => {
    const timeout = AbortSignal.timeout(provider.timeoutMs);
    const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
    const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
    if (apiKey !== undefined) headers.authorization = `Bearer ${apiKey}`;
    let text: string;
    let response: Response;
    try {
      response = await fetchImpl(url, { method: "POST", headers, body: JSON.stringify(body), signal: combined });
      text = await response.text();
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (timeout.aborted) throw new UpstreamFailure("timeout", `no answer within ${provider.timeoutMs} ms`, { cause: error });
      throw new UpstreamFailure("network", (error as Error).message, { cause: error });
    }
    if (!response.ok) {
      throw new UpstreamFailure("http", `HTTP ${response.status}: ${scrub(text)}`, {
        status: response.status,
        retryAfterMs: retryAfterMs(response.headers),
      });
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new UpstreamFailure("bad_response", `malformed JSON: ${scrub(text)}`, { cause: error });
    }
  };

  switch (provider.type) {
    case "openai-compatible":
      return {
        async embed({ texts, model, dimensions, signal }) {
          const answer = await post(`${provider.baseUrl}/embeddings`, {
            model,
            input: texts,
            encoding_format: "float",
            ...(dimensions === undefined ? {} : { dimensions }),
          }, signal);
          return parseOpenAiAnswer(answer);
        },
      };
    case "tei":
      return {
        async embed({ texts, signal }) {
          return { vectors: parseMatrix(await post(`${provider.baseUrl}/embed`, { inputs: texts, truncate: true }, signal)) };
        },
      };
    case "hf-inference":
      return {
        async embed({ texts, model, signal }) {
          const url = `${provider.baseUrl}/models/${model.split("/").map(encodeURIComponent).join("/")}/pipeline/feature-extraction`;
          return { vectors: parseMatrix(await post(url, { inputs: texts }, signal)) };
        },
      };
    case "local":
      throw new Error("the local provider has no upstream client");
  }
}

function bad(detail: string): UpstreamFailure {
  return new UpstreamFailure("bad_response", detail);
}

function vector(value: unknown, where: string): Float32Array {
  if (!Array.isArray(value) || !value.every((item) => typeof item === "number" && Number.isFinite(item))) {
    throw bad(`${where} is not a list of finite numbers`);
  }
  return Float32Array.from(value as number[]);
}

/** OpenAI's embeddings list: `data[i]` {index, embedding}, put in `index` order (each index once). */
function parseOpenAiAnswer(answer: unknown): UpstreamAnswer {
  const data = (answer as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) throw bad("no data list");
  const vectors: Float32Array[] = new Array<Float32Array>(data.length);
  data.forEach((item: unknown, position) => {
    const entry = item as { index?: unknown; embedding?: unknown } | null;
    const index = entry?.index === undefined ? position : entry.index;
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index >= data.length || vectors[index] !== undefined) {
      throw bad(`data[${position}].index is missing, out of range or repeated`);
    }
    vectors[index] = vector(entry?.embedding, `data[${position}].embedding`);
  });
  const usage = (answer as { usage?: { prompt_tokens?: unknown; total_tokens?: unknown } }).usage;
  const tokens = usage?.prompt_tokens ?? usage?.total_tokens;
  return { vectors, ...(typeof tokens === "number" && tokens > 0 ? { promptTokens: tokens } : {}) };
}

/** TEI's and HF Inference's answer: one vector per input (token-level features are refused). */
function parseMatrix(answer: unknown): Float32Array[] {
  if (!Array.isArray(answer)) throw bad("not a list of vectors");
  return answer.map((row, index) => vector(row, `vector ${index}`));
}
