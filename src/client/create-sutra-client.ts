import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import {
  EmbedderService,
  GenerateEmbeddingsResponseSchema,
  type CancelJobRequestSchema,
  type CreateJobRequestSchema,
  type DownloadModelResponse,
  type GenerateEmbeddingsRequestSchema,
  type GenerateEmbeddingsResponse,
  type GenerateEmbeddingsStreamRequestSchema,
  type GenerateEmbeddingsStreamResponse,
  type GetHealthResponse,
  type GetJobResultsResponse,
  type Job,
  type ListJobsRequestSchema,
  type ListJobsResponse,
  type ListModelsRequestSchema,
  type ListModelsResponse,
  type Model,
  type StreamConfigSchema,
  type StreamEmbeddingsResponse,
  type TextChunkSchema,
} from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { DEFAULT_RETRY_OPTIONS, planRetry, sleep, withRetries, type RetryOptions } from "./retry.js";
import { DEFAULT_REQUEST_LIMITS, splitInputs, type InputPart, type RequestLimits } from "./split-inputs.js";

/** A GenerateEmbeddings request as the SDK takes it (any subset of the fields). */
export type EmbedRequest = MessageInitShape<typeof GenerateEmbeddingsRequestSchema>;
/** A GenerateEmbeddingsStream request. */
export type EmbedStreamRequest = MessageInitShape<typeof GenerateEmbeddingsStreamRequestSchema>;
/** The first message of a StreamEmbeddings stream. */
export type StreamConfigInit = MessageInitShape<typeof StreamConfigSchema>;
/** A text of a StreamEmbeddings stream: a plain string (chunk id = its position) or a full chunk. */
export type StreamChunkInit = string | MessageInitShape<typeof TextChunkSchema>;
/** A CreateJob request. */
export type CreateJobRequest = MessageInitShape<typeof CreateJobRequestSchema>;
/** A ListJobs request. */
export type ListJobsRequest = MessageInitShape<typeof ListJobsRequestSchema>;
/** A ListModels request. */
export type ListModelsRequest = MessageInitShape<typeof ListModelsRequestSchema>;

/** Options of a client; every field has a default. */
export interface SutraClientOptions {
  /** Retry policy; merged over DEFAULT_RETRY_OPTIONS. `{ maxAttempts: 1 }` turns retries off. */
  retry?: Partial<RetryOptions>;
  /** The server's limits inputs are split to; merged over DEFAULT_REQUEST_LIMITS. Set them when the server's differ. */
  limits?: Partial<RequestLimits>;
  /** Parts of one split `embed` call in flight at once (default 4). */
  concurrency?: number;
  /** Deadline of each attempt in ms, unless the call's own options set `timeoutMs` (default: none). */
  timeoutMs?: number;
}

/**
 * A typed Sutra Embedder client over any Connect transport (connect-node's
 * gRPC, Connect or gRPC-Web transports in Node; connect-web's in the browser).
 * Every rpc is here; all but CreateJob and StreamEmbeddings retry by the
 * server's reason (see isRetryable), honouring `retry-after`.
 */
export interface SutraClient {
  /** The generated client, for calls without the SDK's retries and splitting. */
  readonly raw: Client<typeof EmbedderService>;
  /** The limits inputs are split to. */
  readonly limits: RequestLimits;
  /**
   * GenerateEmbeddings for any number of texts: split into requests within
   * the server's limits, sent `concurrency` at a time, each retried on its
   * own, and reassembled in input order. Embeddings, usage and truncated
   * input indices cover the whole call; `performance.latencyMs` is its wall
   * time (queue, tokenization and inference times are summed over parts);
   * `metadata.requestId` lists the parts' ids, comma-separated. A part that
   * fails for good stops the others and fails the call, its message naming
   * the part's texts.
   */
  embed(request: EmbedRequest, options?: CallOptions): Promise<GenerateEmbeddingsResponse>;
  /**
   * GenerateEmbeddingsStream as an async iterator: one message per text as
   * its batch finishes (completion order; `index` is the text's index in
   * `request.texts`). Inputs beyond the limits are split and streamed part
   * after part; when a part fails with a retryable reason, only the texts not
   * yet answered are sent again, so every index comes exactly once.
   */
  embedStream(request: EmbedStreamRequest, options?: CallOptions): AsyncIterable<GenerateEmbeddingsStreamResponse>;
  /**
   * StreamEmbeddings (bidirectional; needs an HTTP/2 transport such as
   * connect-node's gRPC one, not available in browsers): sends `config`, then
   * every chunk, and yields each answer (an embedding, or a per-chunk
   * `error`) as it arrives. Not retried: a broken stream fails the iterator.
   */
  streamEmbeddings(config: StreamConfigInit, chunks: AsyncIterable<StreamChunkInit> | Iterable<StreamChunkInit>, options?: CallOptions): AsyncIterable<StreamEmbeddingsResponse>;
  listModels(request?: ListModelsRequest, options?: CallOptions): Promise<ListModelsResponse>;
  getModel(modelId: string, options?: CallOptions): Promise<Model>;
  /** Starts or polls a download (idempotent); call again until the status is READY or FAILED. */
  downloadModel(modelId: string, revision?: string, options?: CallOptions): Promise<DownloadModelResponse>;
  getHealth(options?: CallOptions): Promise<GetHealthResponse>;
  /**
   * CreateJob. Not idempotent: retried only on reasons that mean the server
   * refused it before doing anything (OVERLOADED, RATE_LIMITED,
   * SHUTTING_DOWN), never after a lost connection, where it may have run.
   */
  createJob(request: CreateJobRequest, options?: CallOptions): Promise<Job>;
  getJob(jobId: string, options?: CallOptions): Promise<Job>;
  listJobs(request?: ListJobsRequest, options?: CallOptions): Promise<ListJobsResponse>;
  /** CancelJob; cancelling a finished job changes nothing and answers its state. */
  cancelJob(jobId: string, options?: CallOptions): Promise<Job>;
  /**
   * GetJobResults as an async iterator, from result number `offset` (default
   * 0). A stream broken for a retryable cause resumes at the next result, so
   * each result comes exactly once.
   */
  jobResults(jobId: string, offset?: number, options?: CallOptions): AsyncIterable<GetJobResultsResponse>;
}

/**
 * Reasons CreateJob is retried on: refusals before any work. Narrower than the
 * retryable column (RETRYABLE_REASONS) because CreateJob is not idempotent:
 * only these reasons say for certain that no job was stored.
 */
const REFUSAL_REASONS = ["OVERLOADED", "RATE_LIMITED", "SHUTTING_DOWN"];

/** Creates a SutraClient over `transport` (see SutraClientOptions for the defaults). */
export function createSutraClient(transport: Transport, options: SutraClientOptions = {}): SutraClient {
  const raw = createClient(EmbedderService, transport);
  const retry: RetryOptions = { ...DEFAULT_RETRY_OPTIONS, ...options.retry };
  const limits: RequestLimits = { ...DEFAULT_REQUEST_LIMITS, ...options.limits };
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const withDeadline = (callOptions: CallOptions = {}): CallOptions =>
    callOptions.timeoutMs === undefined && options.timeoutMs !== undefined ? { ...callOptions, timeoutMs: options.timeoutMs } : callOptions;
  const unary = <T>(method: string, call: (callOptions: CallOptions) => Promise<T>, callOptions: CallOptions | undefined, idempotent = true, policy = retry): Promise<T> =>
    withRetries(method, () => call(withDeadline(callOptions)), policy, { idempotent, signal: callOptions?.signal });

  async function embed(request: EmbedRequest, callOptions: CallOptions = {}): Promise<GenerateEmbeddingsResponse> {
    const texts = request.texts ?? [];
    const parts = splitInputs(texts, limits);
    if (parts.length <= 1) return unary("GenerateEmbeddings", (attemptOptions) => raw.generateEmbeddings(request, attemptOptions), callOptions);
    const started = performance.now();
    const stopParts = new AbortController();
    const signal = callOptions.signal ? AbortSignal.any([callOptions.signal, stopParts.signal]) : stopParts.signal;
    const answers: GenerateEmbeddingsResponse[] = new Array(parts.length);
    let firstFailure: ConnectError | undefined;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < parts.length && firstFailure === undefined) {
        const index = next++;
        const part = parts[index];
        const partRequest = { ...request, texts: texts.slice(part.start, part.start + part.count) };
        try {
          answers[index] = await unary("GenerateEmbeddings", (attemptOptions) => raw.generateEmbeddings(partRequest, attemptOptions), { ...callOptions, signal });
        } catch (error) {
          // The first failure stops the other parts; theirs are only echoes of it.
          firstFailure ??= partError(error, part);
          stopParts.abort();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, parts.length) }, worker));
    if (firstFailure !== undefined) throw firstFailure;
    return mergeAnswers(answers, parts, performance.now() - started);
  }

  async function* embedStream(request: EmbedStreamRequest, callOptions: CallOptions = {}): AsyncGenerator<GenerateEmbeddingsStreamResponse> {
    const texts = request.texts ?? [];
    for (const part of splitInputs(texts, limits)) {
      let pending = Array.from({ length: part.count }, (_, offset) => part.start + offset);
      for (let attempt = 1; pending.length > 0; attempt += 1) {
        const sent = pending;
        const answered = new Set<number>();
        try {
          const stream = raw.generateEmbeddingsStream({ ...request, texts: sent.map((index) => texts[index]) }, withDeadline(callOptions));
          for await (const message of stream) {
            const index = sent[message.index];
            if (index === undefined || answered.has(index)) continue;
            answered.add(index);
            message.index = index;
            yield message;
          }
          pending = sent.filter((index) => !answered.has(index));
          if (pending.length > 0) throw new ConnectError(`the stream ended with ${pending.length} texts unanswered`, Code.Unavailable);
        } catch (error) {
          pending = sent.filter((index) => !answered.has(index));
          const delayMs = planRetry("GenerateEmbeddingsStream", attempt, error, retry, { idempotent: true, signal: callOptions.signal });
          if (delayMs === undefined) throw error;
          await sleep(delayMs, callOptions.signal);
        }
      }
    }
  }

  async function* streamEmbeddings(
    config: StreamConfigInit,
    chunks: AsyncIterable<StreamChunkInit> | Iterable<StreamChunkInit>,
    callOptions: CallOptions = {},
  ): AsyncGenerator<StreamEmbeddingsResponse> {
    async function* requests() {
      yield { message: { case: "config" as const, value: config } };
      let position = 0;
      for await (const chunk of chunks) {
        const value = typeof chunk === "string" ? { chunkId: String(position), text: chunk, position: BigInt(position) } : chunk;
        position += 1;
        yield { message: { case: "chunk" as const, value } };
      }
    }
    yield* raw.streamEmbeddings(requests(), withDeadline(callOptions));
  }

  async function* jobResults(jobId: string, offset = 0, callOptions: CallOptions = {}): AsyncGenerator<GetJobResultsResponse> {
    let delivered = offset;
    for (let attempt = 1; ; attempt += 1) {
      try {
        for await (const result of raw.getJobResults({ jobId, offset: BigInt(delivered) }, withDeadline(callOptions))) {
          delivered += 1;
          yield result;
        }
        return;
      } catch (error) {
        const delayMs = planRetry("GetJobResults", attempt, error, retry, { idempotent: true, signal: callOptions.signal });
        if (delayMs === undefined) throw error;
        await sleep(delayMs, callOptions.signal);
      }
    }
  }

  const refusalsOnly: RetryOptions = { ...retry, reasons: retry.reasons.filter((reason) => REFUSAL_REASONS.includes(reason)) };
  return {
    raw,
    limits,
    embed,
    embedStream,
    streamEmbeddings,
    jobResults,
    listModels: (request = {}, callOptions) => unary("ListModels", (o) => raw.listModels(request, o), callOptions),
    getModel: async (modelId, callOptions) => required((await unary("GetModel", (o) => raw.getModel({ modelId }, o), callOptions)).model, "GetModel"),
    downloadModel: (modelId, revision = "", callOptions) => unary("DownloadModel", (o) => raw.downloadModel({ modelId, revision }, o), callOptions),
    getHealth: (callOptions) => unary("GetHealth", (o) => raw.getHealth({}, o), callOptions),
    createJob: async (request, callOptions) => required((await unary("CreateJob", (o) => raw.createJob(request, o), callOptions, false, refusalsOnly)).job, "CreateJob"),
    getJob: async (jobId, callOptions) => required((await unary("GetJob", (o) => raw.getJob({ jobId }, o), callOptions)).job, "GetJob"),
    listJobs: (request = {}, callOptions) => unary("ListJobs", (o) => raw.listJobs(request, o), callOptions),
    cancelJob: async (jobId, callOptions) =>
      required((await unary("CancelJob", (o) => raw.cancelJob({ jobId } satisfies MessageInitShape<typeof CancelJobRequestSchema>, o), callOptions)).job, "CancelJob"),
  };
}

/** The message field an answer must carry; a server that leaves it out broke the contract. */
function required<T>(value: T | undefined, method: string): T {
  if (value === undefined) throw new ConnectError(`${method} answered without its result`, Code.Internal);
  return value;
}

/** The failure of one part of a split call, its message naming the part's texts (details and metadata kept). */
function partError(error: unknown, part: InputPart): ConnectError {
  const original = ConnectError.from(error);
  const wrapped = new ConnectError(
    `${original.rawMessage} (texts ${part.start}..${part.start + part.count - 1} of the call; indices in details count from ${part.start})`,
    original.code,
    original.metadata,
    undefined,
    original,
  );
  wrapped.details = original.details;
  return wrapped;
}

/** One response for a split call: the parts' answers in input order. */
function mergeAnswers(answers: GenerateEmbeddingsResponse[], parts: InputPart[], wallMs: number): GenerateEmbeddingsResponse {
  const first = answers[0];
  const sum = (pick: (answer: GenerateEmbeddingsResponse) => number | undefined): number => answers.reduce((total, answer) => total + (pick(answer) ?? 0), 0);
  const count = parts.reduce((total, part) => total + part.count, 0);
  return create(GenerateEmbeddingsResponseSchema, {
    embeddings: answers.flatMap((answer) => answer.embeddings),
    modelInfo: first.modelInfo,
    performance: {
      latencyMs: wallMs,
      throughputEmbPerSec: wallMs > 0 ? (count * 1000) / wallMs : 0,
      queueMs: sum((answer) => answer.performance?.queueMs),
      inferenceMs: sum((answer) => answer.performance?.inferenceMs),
      tokenizationMs: sum((answer) => answer.performance?.tokenizationMs),
      memoryUsageMb: Math.max(...answers.map((answer) => answer.performance?.memoryUsageMb ?? 0)),
      gpuUtilization: first.performance?.gpuUtilization ?? 0,
    },
    metadata: {
      timestamp: first.metadata?.timestamp,
      hardwareProfile: first.metadata?.hardwareProfile,
      dimensionsPolicy: first.metadata?.dimensionsPolicy,
      requestId: answers.map((answer) => answer.metadata?.requestId ?? "").join(","),
      truncatedInputs: answers.flatMap((answer, index) => (answer.metadata?.truncatedInputs ?? []).map((input) => input + parts[index].start)),
    },
    usage: { promptTokens: sum((answer) => answer.usage?.promptTokens), totalTokens: sum((answer) => answer.usage?.totalTokens) },
  });
}
