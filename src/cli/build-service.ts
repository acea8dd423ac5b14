import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createAccessControl } from "../admission/access-control.js";
import { createRateLimiter } from "../admission/rate-limit.js";
import { createServer } from "../api/create-server.js";
import { createJobService, type JobServiceDeps, type JobServiceHandle } from "../jobs/create-job-service.js";
import { JobStoreError, openJobStore, type JobStore } from "../jobs/job-store.js";
import { createEmbeddingCache } from "../cache/embedding-cache.js";
import { parseModelAliases } from "../api/openai/model-aliases.js";
import { createAuthenticator } from "../auth/create-authenticator.js";
import { createInferencePool, type InferencePool } from "../inference/pool.js";
import { answeredProfileName, resolveHardwareProfile, servingSettings, tierOf } from "../inference/hardware-profile.js";
import { probeCuda } from "../inference/probe-cuda.js";
import { BUILTIN_MODELS_DIR } from "../models/builtin.js";
import { createVariantPreparer } from "../models/hub/prepare-variants.js";
import { createModelRegistry } from "../models/registry.js";
import type { Logger } from "../observability/logger.js";
import { createMetrics, registerServiceGauges, registerStreamGauges, type Metrics } from "../observability/metrics.js";
import { PACKAGE_ROOT } from "../package-root.js";
import { createEmbedRequest } from "../domain/embed-request.js";
import { createHealthReporter } from "../engine/create-health-reporter.js";
import { createLocalEngine } from "../engine/create-local-engine.js";
import { createModelCatalog } from "../engine/model-catalog.js";
import { createFrontDoor, type FrontDoor } from "../front-door/create-front-door.js";
import { createFailureCounter } from "../observability/count-failure.js";
import { loadProviderGateway } from "../providers/load-provider-gateway.js";
import { createStreamSessions, type StreamSessions } from "../streaming/create-stream-sessions.js";
import { connectionLimitsOf, type ServeConfig } from "./serve-options.js";

const packageVersion = (JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string }).version;

/** A wired service: server not yet listening, plus what main needs to stop it. */
export interface Service {
  server: ReturnType<typeof createServer>;
  /** The front door every transport and the job service call. */
  embedder: FrontDoor;
  pool: InferencePool;
  metrics: Metrics;
  /** The streams of StreamEmbeddings and the WebSocket route, with their counters. */
  streams: StreamSessions;
  /** Loads the default model; health turns healthy once it resolves. */
  start(): Promise<void>;
  /** Waits for accepted texts to finish, then closes the worker pool (call after beginShutdown). */
  close(): Promise<void>;
}

/** How the service is put together, beyond the settings of `sutra serve`. */
export interface BuildServiceOptions {
  /** File URL of the module each inference worker thread loads; default the built-in worker (see InferencePoolOptions). */
  workerModule?: string;
}

/**
 * Builds the whole service from its settings: hardware profile, worker pool,
 * model registry (built-in models first, then `modelsDir`), the pipeline and
 * the transport server. Nothing listens; `main` and tests call `listen`.
 */
export async function buildService(config: ServeConfig, logger: Logger, options: BuildServiceOptions = {}): Promise<Service> {
  const wantsCuda = config.cuda || tierOf(config.profile) === "extreme";
  const cuda = wantsCuda ? await probeCuda() : { available: false, reason: "not requested" };
  if (wantsCuda && !cuda.available) logger.warn({ reason: cuda.reason }, "CUDA unavailable; falling back to CPU");
  const profile = resolveHardwareProfile(config.profile, {
    cuda: config.cuda,
    cudaAvailable: cuda.available,
    overrides: { workers: config.workers, intraOpThreads: config.intraOpThreads, tokenBudget: config.tokenBudget, maxBatchSize: config.maxBatchSize },
  });
  const serving = servingSettings(profile, config.maxQueue);
  const metrics = createMetrics();
  // Loaded before the pool starts, so a bad providers file stops the server with nothing to close.
  const providers = loadProviderGateway(config, { metrics, logger, isLocalModel: (name) => registry.knows(name) });
  const pool = createInferencePool({
    threads: profile.workers,
    workerModule: options.workerModule,
    onWorkerLost: (error) => {
      metrics.workerReplacementsTotal.inc();
      logger.error({ err: error }, "inference worker lost; starting a replacement");
    },
  });
  let warmup = async (_modelId: string): Promise<void> => {};
  const registry = createModelRegistry({
    modelDirs: [BUILTIN_MODELS_DIR, resolve(config.modelsDir)],
    defaultModelId: config.defaultModel,
    highQualityModelId: config.highQualityModel || undefined,
    aliases: parseModelAliases(config.modelAliases, config.defaultModel),
    memoryBudgetMb: config.modelMemoryBudgetMb,
    sessionsPerModel: profile.workers,
    releaseModel: (dir) => pool.releaseModel(dir),
    hub: {
      endpoint: config.hfEndpoint,
      token: config.hfToken || undefined,
      allowlist: listOf(config.modelAllowlist),
    },
    prepareDownload: createVariantPreparer(logger),
    warmup: (modelId) => warmup(modelId),
    onEvent: (event) => {
      if (event.kind === "failed") logger.error({ model: event.modelId, reason: event.reason }, "model download failed");
      else logger.info({ model: event.modelId }, `model ${event.kind}`);
    },
  });
  const cache = config.cacheSize > 0
    ? createEmbeddingCache({ maxEntries: config.cacheSize, ttlSeconds: config.cacheTtlS })
    : undefined;
  const engine = createLocalEngine({
    registry, pool, profile, cudaAvailable: cuda.available, maxQueue: config.maxQueue, logger, metrics, cache, dimensionsPolicy: config.dimensionsPolicy,
  });
  const rateLimiter = createRateLimiter({
    requestsPerMinute: config.rateLimitRpm,
    tokensPerMinute: config.rateLimitTpm,
    burst: config.rateLimitBurst,
  });
  const failures = createFailureCounter(metrics);
  const embedder = createFrontDoor({
    engine,
    models: createModelCatalog(registry, serving),
    health: createHealthReporter({ registry, pool, profile, serving, cudaAvailable: cuda.available, version: packageVersion, cache, providers }),
    hardwareProfile: answeredProfileName(profile),
    providers,
    rateLimiter,
    limits: { maxInputs: config.maxInputs, maxConcurrency: config.maxConcurrency },
    failures,
    logger,
    metrics,
  });
  warmup = async (modelId) => {
    await embedder.embed(createEmbedRequest({ requestId: `warmup-${modelId}`, texts: ["warmup"], model: modelId }));
  };
  const tls = config.tlsCert && config.tlsKey
    ? { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) }
    : undefined;
  const authenticator = createAuthenticator({
    mode: config.authMode,
    apiKeys: config.apiKeys,
    apiKeysFile: config.apiKeysFile,
    jwtSecret: config.jwtSecret,
    jwtPublicKey: config.jwtPublicKey,
    jwtIssuer: config.jwtIssuer,
    jwtAudience: config.jwtAudience,
  });
  registerServiceGauges(metrics, embedder);
  const streams = createStreamSessions({ embedder });
  registerStreamGauges(metrics, streams);
  const jobs = config.dataDir ? buildJobService(config, { embedder, registry, logger, metrics, batching: { ...profile, maxQueue: config.maxQueue } }) : undefined;
  const server = createServer({
    jobs,
    embedder,
    streams,
    logger,
    failures,
    limits: { maxBodyBytes: config.maxBodyBytes },
    tls,
    access: createAccessControl({ authenticator, rateLimiter, metrics }),
    metrics,
    providers,
    connectionLimits: connectionLimitsOf(config),
    origins: {
      checkHost: config.authMode === "none",
      allowedHosts: listOf(config.allowedHosts),
      corsOrigins: listOf(config.corsOrigins),
    },
  });
  logger.info({ profile: profile.name, ...serving }, "hardware profile");
  return {
    server,
    embedder,
    pool,
    metrics,
    streams,
    async start() {
      await registry.start();
      for (const failure of registry.failures()) logger.error({ model: failure.id, reason: failure.reason }, "model failed to load");
      jobs?.start();
    },
    async close() {
      await jobs?.stop();
      await embedder.drained();
      await pool.close();
      jobs?.close();
    },
  };
}

/** The entries of a comma-separated setting, trimmed, empty ones dropped. */
function listOf(setting: string): string[] {
  return setting.split(",").map((entry) => entry.trim()).filter(Boolean);
}

/**
 * The document-job service over the store in `config.dataDir` (opened now, so
 * a corrupt store stops the start with a clear error; a store another process
 * holds turns jobs off here, logged, while the rest of the service runs),
 * running jobs through the pipeline itself at background priority.
 */
function buildJobService(
  config: ServeConfig,
  deps: Pick<JobServiceDeps, "embedder" | "registry" | "logger"> & { metrics: Metrics; batching: JobServiceDeps["batching"] },
): JobServiceHandle | undefined {
  let store: JobStore;
  try {
    store = openJobStore({ dataDir: resolve(config.dataDir) });
  } catch (error) {
    if (!(error instanceof JobStoreError) || error.kind !== "locked") throw error;
    deps.logger.error({ err: error }, `document jobs are off: ${error.message}`);
    return undefined;
  }
  return createJobService({
    store,
    embedder: deps.embedder,
    registry: deps.registry,
    logger: deps.logger,
    batching: { maxBatchSize: deps.batching.maxBatchSize, tokenBudget: deps.batching.tokenBudget, maxQueue: deps.batching.maxQueue },
    concurrency: config.jobConcurrency,
    limits: {
      maxDocuments: config.jobMaxDocuments,
      maxBytes: config.jobMaxBytes,
      maxActivePerPrincipal: config.jobMaxActive,
      retentionMs: config.jobRetentionH * 3_600_000,
    },
    onChunksEmbedded: (count) => deps.metrics.jobChunksEmbeddedTotal.inc(count),
    onJobFinished: (status) => deps.metrics.jobsFinishedTotal.inc({ status }),
  });
}
