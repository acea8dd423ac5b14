import type { EmbedderError } from "./errors.js";

/** Weight precision a request may ask for (`binary` = fastest gated variant, packed binary output). */
export type QuantizationChoice = "none" | "int8" | "int4" | "binary";

/** Output encodings of an embedding (docs/REST.md, "Responses"). */
export type EmbeddingType = "float" | "int8" | "uint8" | "binary" | "ubinary";

/**
 * How a `dimensions` the model produces neither natively nor as a Matryoshka
 * size is honoured (docs/MODELS.md, "Dimensions"): `reduce` truncates then
 * renormalises (below the native size only), `pad` appends zeros then
 * renormalises, `ignore` answers the native size, `reject` refuses with
 * INVALID_DIMENSIONS.
 */
export type DimensionsPolicy = "reduce" | "pad" | "ignore" | "reject";

/** What to do with an input longer than the model's window. */
export type TruncateMode = "end" | "start" | "none";

/** Hardware tiers and the seed's aliases for them. */
export type HardwareProfileName =
  | "auto" | "minimal" | "low" | "medium" | "high" | "extreme" | "desktop" | "server" | "h100";

/** The seed's per-request engine options; an absent field is unset (not false). */
export interface EngineConfig {
  quantization?: QuantizationChoice;
  useFp16?: boolean;
  batchSize?: number;
  binaryQuantization?: boolean;
  hardwareProfile?: HardwareProfileName;
}

/**
 * One embedding request as every transport hands it to the front door. Made
 * with `createEmbedRequest` (src/domain/embed-request.ts), which fills the
 * defaults; the front door validates it.
 */
export interface EmbedRequest {
  requestId: string;
  texts: string[];
  /** 0 = the model's native size. */
  dimensions: number;
  /** How a size the model does not produce is honoured; absent = the server's default (`SUTRA_DIMENSIONS_POLICY`). */
  dimensionsPolicy?: DimensionsPolicy;
  /** Preset, model id, alias or `provider:model`; "" = the `efficient` preset. */
  model: string;
  config: EngineConfig;
  instruction?: string;
  promptName?: string;
  truncate: TruncateMode;
  normalize: boolean;
  embeddingTypes: EmbeddingType[];
  allowCrossModelFallback: boolean;
  /** Provider named by the `x-provider` header (docs/PROVIDERS.md); a `provider:` prefix of `model` does the same. */
  provider?: string;
  /** The place an early admission (Embedder.reserve) holds for this request, released once its texts are queued or it ends. */
  admission?: { release(): void };
  user?: string;
  /** Who sent the request (set by the transport after authentication); rate limits and logs use it. */
  principal?: Principal;
  /**
   * `background` (document jobs) runs only on inference capacity online
   * requests leave idle; absent = `online`.
   */
  priority?: "online" | "background";
}

/** Roles (docs/AUTH.md): `admin` may also call the admin routes and rpcs. */
export type Role = "user" | "admin";

/**
 * An authenticated caller. `id` is safe to log and keys rate limits: a JWT's
 * `sub`, a hash prefix of an API key (never the key), or `anonymous` when
 * authentication is off.
 */
export interface Principal {
  id: string;
  role: Role;
  /** How the caller proved who it is. */
  method: "none" | "api-key" | "jwt";
}

/** One embedding in the encodings the request asked for. */
export interface EncodedEmbedding {
  float?: Float32Array;
  int8?: Int8Array;
  uint8?: Uint8Array;
  binary?: Int8Array;
  ubinary?: Uint8Array;
}

/** What actually ran for a request. */
export interface RunInfo {
  modelId: string;
  name: string;
  dimensions: number;
  qualityScore: number;
  sizeMb: number;
  precision: string;
  executionProvider: string;
  /** Who produced the vectors: `local` or an upstream provider's name. */
  provider: string;
  /** The provider first asked, when a fallback produced the vectors instead. */
  fallbackFrom?: string;
}

/** Stage timings of one request, in milliseconds. */
export interface StageTimings {
  totalMs: number;
  tokenizationMs: number;
  queueMs: number;
  inferenceMs: number;
}

/** The pipeline's answer: one embedding per input, in input order. */
export interface EmbedResult {
  embeddings: EncodedEmbedding[];
  run: RunInfo;
  timings: StageTimings;
  promptTokens: number;
  /** Indices of inputs that were cut to the model's window. */
  truncatedInputs: number[];
  hardwareProfile: HardwareProfileName;
  /** How `dimensions` was honoured: native, matryoshka, reduce, pad, ignore (an upstream provider's vectors: native, upstream). */
  dimensionsPolicy: string;
}

/** Health states: `healthy`; `degraded` (still serving, something is off); `unhealthy` (not serving). See docs/ARCHITECTURE.md, "Health". */
export type HealthState = "healthy" | "degraded" | "unhealthy";

/** What `Embedder.reserve` answers: the refusal, or the release of the place it holds. */
export type EarlyAdmission = { refused: EmbedderError } | { release(): void };

/** A model as ListModels shows it. */
export interface ModelDescription {
  id: string;
  name: string;
  dimensions: number;
  qualityScore: number;
  sizeMb: number;
  license: string;
  status: "available" | "downloading" | "ready" | "loaded" | "failed";
  statusReason: string;
  maxTokens: number;
  matryoshkaDimensions: number[];
  precisions: string[];
  hardwareProfiles: HardwareProfileName[];
  pooling: string;
  aliases: string[];
  source: string;
  /** While downloading: progress 0..1 and estimated seconds left. */
  downloadProgress?: number;
  downloadEtaSeconds?: number;
  /** Names `prompt_name` accepts: the model's prompts, then its task presets. */
  promptNames?: string[];
  /** Hub commit the files came from, when downloaded. */
  revision?: string;
  /** How this server runs the model (absent where no engine serves it, e.g. a bare registry listing). */
  serving?: ServingSettings;
}

/** The hardware tier in force (detected under `auto`) and the engine settings it runs with. */
export interface ServingSettings {
  tier: Exclude<HardwareProfileName, "auto" | "desktop" | "server" | "h100">;
  executionProvider: string;
  workers: number;
  intraOpThreads: number;
  /** Most padded tokens (texts x longest text) in one batch. */
  tokenBudget: number;
  maxBatchSize: number;
  /** Most texts waiting per priority (a request finds room whenever nothing of its priority waits). */
  maxQueue: number;
}

/** Where a model download stands (DownloadModel is idempotent: call again to poll). */
export interface ModelDownloadStatus {
  modelId: string;
  status: ModelDescription["status"];
  /** 0..1 */
  progress: number;
  etaSeconds: number;
  bytesDownloaded: number;
  bytesTotal: number;
  message: string;
}

/** The service health report. */
export interface HealthReport {
  state: HealthState;
  checks: {
    modelsAvailable: boolean;
    gpuAccessible: boolean;
    modelCacheHealthy: boolean;
    workers: { ready: number; total: number; replaced: number };
    providers: Array<{ name: string; breakerState: string; healthy: boolean }>;
    issues: string[];
  };
  performance: { avgLatencyMs: number; requestsPerSecond: number };
  /** Embedding cache stats; `maxEntries` 0 = off. */
  cache: { enabled: boolean; entries: number; hits: number; misses: number; maxEntries?: number; ttlSeconds?: number };
  version: string;
  uptimeSeconds: number;
  hardwareProfile: HardwareProfileName;
  executionProvider: string;
  defaultModel: string;
  serving: ServingSettings;
}

/**
 * One input's outcome in a streaming call, told as soon as the batch holding
 * it finishes: its embedding (with what ran it), or the error that this input
 * alone hit (INPUT_TOO_LONG with `truncate: none`) while the others go on.
 */
export type EmbedStreamItem =
  | { index: number; embedding: EncodedEmbedding; tokens: number; run: RunInfo }
  | { index: number; error: EmbedderError };

/** What a streaming call resolves with once every item was told: the unary result without the embeddings. */
export type EmbedStreamResult = Omit<EmbedResult, "embeddings">;

/**
 * What `check` settles for a request without running it: the model, precision
 * and execution provider that would run, the tier, and how `dimensions` is honoured.
 */
export interface EmbedPlan {
  run: RunInfo;
  hardwareProfile: HardwareProfileName;
  dimensionsPolicy: string;
}

/**
 * The front door as the transport layer sees it: the one seam every transport
 * calls (the `Infer` of TEI). It validates, admits, routes and runs; failures
 * are counted there once. Implementations honour `signal`: a request whose
 * client has gone is dropped before inference and rejects with CANCELLED.
 */
export interface Embedder {
  embed(request: EmbedRequest, signal?: AbortSignal): Promise<EmbedResult>;
  /**
   * Embeds like `embed`, through the same batches, but tells `onItem` of each
   * input as soon as its batch finishes (completion order, with its index)
   * instead of collecting them. Resolves once every input was told; rejects
   * for request-wide failures (UNKNOWN_MODEL, OVERLOADED, a failed batch,
   * CANCELLED, ...), after which no more items come.
   */
  embedStream(request: EmbedRequest, onItem: (item: EmbedStreamItem) => void, signal?: AbortSignal): Promise<EmbedStreamResult>;
  /**
   * Checks a request's settings without running anything (a stream when it
   * opens, a job when it is created): everything `embed` checks except the
   * inputs themselves (`texts` is ignored), then the model, variant and
   * dimensions are resolved. Rejects with the error `embed` would give.
   */
  check(request: EmbedRequest): Promise<EmbedPlan>;
  /**
   * Admits an online embedding request before its body is read, so that a burst is refused at
   * once instead of after every body was read and parsed: OVERLOADED when the local queue,
   * counting each request admitted this way and not yet released as one text, has no room (or
   * the concurrency limit is reached); else a `release` to call once the body is read (the
   * request's own texts are then counted as it queues them) or the request ended, whichever
   * comes first. The request still runs through `embed` and its checks. Absent: no early refusal.
   */
  reserve?(): EarlyAdmission;
  listModels(filter: { dimensions?: number; hardwareProfile?: HardwareProfileName }): Promise<ModelDescription[]>;
  /**
   * One model by id or alias (UNKNOWN_MODEL otherwise). Absent on embedders without
   * model management (test fakes), where the rpc answers NOT_IMPLEMENTED.
   */
  getModel?(modelId: string): Promise<ModelDescription>;
  /** Starts or polls a hub download (FORBIDDEN off the allowlist). Absent: NOT_IMPLEMENTED. */
  downloadModel?(modelId: string, revision: string): Promise<ModelDownloadStatus>;
  health(): HealthReport;
}
