import { createHash } from "node:crypto";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { createServer } from "../../src/api/create-server.js";
import type { ConnectionLimits, ServerDeps } from "../../src/api/create-server.js";
import { createRateLimiter } from "../../src/admission/rate-limit.js";
import { connectionLimitsOf, serveDefaults } from "../../src/cli/serve-options.js";
import { createFrontDoor, type FrontDoor } from "../../src/front-door/create-front-door.js";
import { createFailureCounter, type FailureCounter } from "../../src/observability/count-failure.js";
import { createMetrics, type Metrics } from "../../src/observability/metrics.js";
import { EmbedderError, ERROR_REASONS } from "../../src/domain/errors.js";
import type { ErrorReason } from "../../src/domain/errors.js";
import type {
  EmbedPlan,
  EmbedRequest,
  EmbedResult,
  EmbedStreamResult,
  Embedder,
  EncodedEmbedding,
  HealthReport,
  HealthState,
  ModelDescription,
} from "../../src/domain/types.js";

/** Native size of the fake model's vectors. */
export const FAKE_DIMENSIONS = 64;

/** Model id the fake embedder reports. */
export const FAKE_MODEL_ID = "fake/hash-64";

/** Timings the fake embedder reports, so tests can check the timing headers. */
export const FAKE_TIMINGS = { totalMs: 12.4, tokenizationMs: 1.6, queueMs: 2.2, inferenceMs: 7.5 };

/**
 * The float vector the fake embedder gives a text: SHA-256-seeded values,
 * L2-normalised, cut to `dimensions` (0 = native). Tests compare transports
 * against this, so it must be what `embed` returns.
 */
export function fakeVector(text: string, dimensions = 0): Float32Array {
  const size = dimensions === 0 ? FAKE_DIMENSIONS : dimensions;
  const values = new Float32Array(size);
  let block = Buffer.alloc(0);
  for (let index = 0; index < size; index += 1) {
    if (index % 32 === 0) block = createHash("sha256").update(`${text}#${index / 32}`).digest();
    values[index] = block[index % 32] / 127.5 - 1;
  }
  const norm = Math.hypot(...values);
  return values.map((value) => value / norm);
}

function packBits(values: Float32Array): Uint8Array {
  const packed = new Uint8Array(Math.ceil(values.length / 8));
  values.forEach((value, index) => {
    if (value > 0) packed[index >> 3] |= 0x80 >> (index & 7);
  });
  return packed;
}

/** The encodings the fake embedder produces for a text (same rules as `embed`). */
export function fakeEncodings(text: string, request: Pick<EmbedRequest, "dimensions" | "embeddingTypes">): EncodedEmbedding {
  const float = fakeVector(text, request.dimensions);
  const encoded: EncodedEmbedding = {};
  for (const type of request.embeddingTypes) {
    if (type === "float") encoded.float = float;
    if (type === "int8") encoded.int8 = Int8Array.from(float, (value) => Math.round(value * 127));
    if (type === "uint8") encoded.uint8 = Uint8Array.from(float, (value) => Math.round((value + 1) * 127.5));
    if (type === "ubinary") encoded.ubinary = packBits(float);
    if (type === "binary") encoded.binary = Int8Array.from(packBits(float), (byte) => byte - 128);
  }
  return encoded;
}

/** A deterministic Embedder for transport tests; its knobs let tests steer it. */
export interface FakeEmbedder extends Embedder {
  /** Every request `embed` received, in order. */
  requests: EmbedRequest[];
  /** How many "slow" requests saw their signal abort. */
  cancelled: number;
  healthState: HealthState;
}

/**
 * A deterministic Embedder standing in for the ONNX pipeline. Models: "",
 * "efficient" and FAKE_MODEL_ID embed; "slow" waits until the signal aborts
 * (for cancellation and deadlines); "fail:<REASON>" throws that EmbedderError
 * (with retryAfterMs 2500 and a detail); anything else is UNKNOWN_MODEL.
 * `embedStream` embeds like `embed` and then tells every item in input order.
 */
export function createFakeEmbedder(): FakeEmbedder {
  const fake: FakeEmbedder = {
    requests: [],
    cancelled: 0,
    healthState: "healthy",
    async embed(request: EmbedRequest, signal?: AbortSignal): Promise<EmbedResult> {
      fake.requests.push(request);
      if (request.model === "slow") {
        try {
          await sleep(60_000, undefined, { signal });
        } catch (error) {
          fake.cancelled += 1;
          throw error;
        }
      }
      if (request.model.startsWith("fail:")) {
        const reason = request.model.slice("fail:".length) as ErrorReason;
        if (!ERROR_REASONS.includes(reason)) throw new Error(`not a reason: ${reason}`);
        throw new EmbedderError(reason, `forced ${reason}`, { details: { forced: true }, retryAfterMs: 2500 });
      }
      if (!["", "efficient", FAKE_MODEL_ID].includes(request.model)) {
        throw new EmbedderError("UNKNOWN_MODEL", `unknown model "${request.model}"`, { details: { model: request.model } });
      }
      const dimensions = request.dimensions === 0 ? FAKE_DIMENSIONS : request.dimensions;
      return {
        embeddings: request.texts.map((text) => fakeEncodings(text, request)),
        run: {
          modelId: FAKE_MODEL_ID,
          name: "Fake hash model",
          dimensions,
          qualityScore: 0.5,
          sizeMb: 1.5,
          precision: request.config.quantization === "int8" ? "int8" : "fp32",
          executionProvider: "cpu",
          provider: "local",
        },
        timings: FAKE_TIMINGS,
        promptTokens: request.texts.reduce((sum, text) => sum + text.split(/\s+/).length, 0),
        truncatedInputs: [],
        hardwareProfile: "medium",
        dimensionsPolicy: request.dimensions === 0 ? "native" : "reduce",
      };
    },
    async embedStream(request, onItem, signal): Promise<EmbedStreamResult> {
      const { embeddings, ...result } = await fake.embed(request, signal);
      embeddings.forEach((embedding, index) => onItem({ index, embedding, tokens: request.texts[index].split(/\s+/).length, run: result.run }));
      return result;
    },
    async check(request): Promise<EmbedPlan> {
      const { run, hardwareProfile, dimensionsPolicy } = await fake.embed({ ...request, texts: [] });
      return { run, hardwareProfile, dimensionsPolicy };
    },
    async listModels(filter): Promise<ModelDescription[]> {
      return FAKE_MODELS.filter(
        (model) =>
          (filter.dimensions === undefined || model.dimensions === filter.dimensions) &&
          (filter.hardwareProfile === undefined || model.hardwareProfiles.includes(filter.hardwareProfile)),
      );
    },
    health(): HealthReport {
      return {
        state: fake.healthState,
        checks: {
          modelsAvailable: fake.healthState !== "unhealthy",
          gpuAccessible: false,
          modelCacheHealthy: true,
          workers: { ready: 2, total: 2, replaced: 0 },
          providers: [],
          issues: fake.healthState === "healthy" ? [] : ["forced by the test"],
        },
        performance: { avgLatencyMs: 3.5, requestsPerSecond: 10 },
        cache: { enabled: false, entries: 0, hits: 0, misses: 0 },
        version: "0.0.0-test",
        uptimeSeconds: 42,
        hardwareProfile: "medium",
        executionProvider: "cpu",
        serving: { tier: "medium", executionProvider: "cpu", workers: 2, intraOpThreads: 1, tokenBudget: 16384, maxBatchSize: 64, maxQueue: 8192 },
        defaultModel: FAKE_MODEL_ID,
      };
    },
  };
  return fake;
}

const FAKE_MODELS: ModelDescription[] = [
  {
    id: FAKE_MODEL_ID,
    name: "Fake hash model",
    dimensions: FAKE_DIMENSIONS,
    qualityScore: 0.5,
    sizeMb: 1.5,
    license: "Apache-2.0",
    status: "loaded",
    statusReason: "",
    maxTokens: 128,
    matryoshkaDimensions: [],
    precisions: ["fp32", "int8"],
    hardwareProfiles: ["auto", "minimal", "low", "medium"],
    pooling: "mean",
    aliases: ["efficient"],
    source: "test",
  },
  {
    id: "fake/big-1024",
    name: "Fake big model",
    dimensions: 1024,
    qualityScore: 0.7,
    sizeMb: 1200,
    license: "MIT",
    status: "available",
    statusReason: "not downloaded",
    maxTokens: 8192,
    matryoshkaDimensions: [256, 512, 1024],
    precisions: ["fp32", "fp16"],
    hardwareProfiles: ["high", "extreme", "h100"],
    pooling: "last-token",
    aliases: [],
    source: "hub",
  },
];

/** A running test server. */
export interface TestServer {
  baseUrl: string;
  port: number;
  embedder: FakeEmbedder;
  /** Closes the server; rejects when a connection is still open 3 s later (a leak). */
  close(): Promise<void>;
}

/**
 * Settings of a test server: any of createServer's, the connection limits one by one, and the front
 * door's `maxInputs` beside the body bound. `embedder` is the fake behind the front door.
 */
export type TestServerOverrides = Omit<Partial<ServerDeps>, "connectionLimits" | "limits"> & {
  connectionLimits?: Partial<ConnectionLimits>;
  limits?: { maxInputs?: number; maxBodyBytes: number };
};

/**
 * The service's real front door (validation, admission, failure counting) in front of a fake that
 * stands in for the local engine and the model catalog, as `sutra serve` puts it in front of ONNX.
 */
export function frontDoorOver(fake: Embedder, options: { maxInputs: number; metrics: Metrics; failures: FailureCounter }): FrontDoor {
  return createFrontDoor({
    engine: {
      async embed(request, signal, onItem) {
        if (onItem === undefined) return fake.embed(request, signal);
        return { ...(await fake.embedStream(request, onItem, signal)), embeddings: [] };
      },
      check: (request) => fake.check(request),
      idle: async () => undefined,
      checkRoom: () => undefined,
    },
    models: fake,
    health: { record: () => undefined, report: () => fake.health() },
    hardwareProfile: "medium",
    rateLimiter: createRateLimiter({ requestsPerMinute: 0, tokensPerMinute: 0, burst: 0 }),
    limits: { maxInputs: options.maxInputs, maxConcurrency: 0 },
    failures: options.failures,
    logger: pino({ level: "silent" }),
    metrics: options.metrics,
  });
}

/** The connection limits `sutra serve` has by default. */
export const DEFAULT_SERVE_CONNECTION_LIMITS: ConnectionLimits = connectionLimitsOf(serveDefaults());

/**
 * Starts createServer on 127.0.0.1, port 0, with the fake embedder, small limits and the
 * connection limits of `sutra serve` (each replaced by `overrides.connectionLimits`).
 */
export async function startTestServer(overrides: TestServerOverrides = {}): Promise<TestServer> {
  const { embedder: given, limits, ...rest } = overrides;
  const embedder = (given ?? createFakeEmbedder()) as FakeEmbedder;
  const metrics = overrides.metrics ?? createMetrics();
  const failures = createFailureCounter(metrics);
  const server = createServer({
    logger: pino({ level: "silent" }),
    healthPollMs: 50,
    ...rest,
    embedder: frontDoorOver(embedder, { maxInputs: limits?.maxInputs ?? 2048, metrics, failures }),
    limits: { maxBodyBytes: limits?.maxBodyBytes ?? 1024 * 1024 },
    metrics,
    failures,
    connectionLimits: { ...DEFAULT_SERVE_CONNECTION_LIMITS, ...overrides.connectionLimits },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const scheme = overrides.tls === undefined ? "http" : "https";
  return {
    baseUrl: `${scheme}://127.0.0.1:${port}`,
    port,
    embedder,
    close: () =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("a connection leaked: the server did not close within 3 s")), 3000);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
