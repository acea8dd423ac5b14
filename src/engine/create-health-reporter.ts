import type { EmbeddingCache } from "../cache/embedding-cache.js";
import type { HealthReport, ServingSettings } from "../domain/types.js";
import type { HardwareProfile } from "../inference/hardware-profile.js";
import type { InferencePool } from "../inference/pool.js";
import type { ModelRegistry } from "../models/registry.js";
import type { ProviderGateway } from "../providers/create-provider-gateway.js";

/** What the health report is computed from: configuration and state, never a request's own options. */
export interface HealthReporterDeps {
  registry: ModelRegistry;
  pool: InferencePool;
  profile: HardwareProfile;
  /** The tier and engine settings in force, reported as they are. */
  serving: ServingSettings;
  cudaAvailable: boolean;
  version: string;
  cache?: EmbeddingCache;
  providers?: ProviderGateway;
}

/** The service's health report plus the latency window its performance section reads. */
export interface HealthReporter {
  /** Notes one answered request's total time. */
  record(latencyMs: number): void;
  /** The report now; `shuttingDown` makes it unhealthy. */
  report(shuttingDown: boolean): HealthReport;
}

/** How long health stays degraded after a worker was replaced. */
const WORKER_RECOVERY_MS = 5_000;
/** Answered requests the average latency is taken over. */
const LATENCY_WINDOW = 256;

/** The health report's cache section. */
function cacheReport(cache: EmbeddingCache | undefined): HealthReport["cache"] {
  if (!cache) return { enabled: false, entries: 0, hits: 0, misses: 0, maxEntries: 0, ttlSeconds: 0 };
  const stats = cache.stats();
  return { enabled: stats.maxSize > 0, entries: stats.size, hits: stats.hits, misses: stats.misses, maxEntries: stats.maxSize, ttlSeconds: stats.ttlSeconds };
}

/**
 * Health as docs/ARCHITECTURE.md ("Health") defines it: `unhealthy` while
 * shutting down, without the default model or without a ready worker;
 * `degraded` while a configured model failed, CUDA was configured and is
 * missing, a provider's breaker is open, or a worker was lost in the last 5 s;
 * `healthy` otherwise.
 */
export function createHealthReporter(deps: HealthReporterDeps): HealthReporter {
  const startedAt = Date.now();
  const recentAt = new Float64Array(LATENCY_WINDOW);
  const recentMs = new Float64Array(LATENCY_WINDOW);
  let recorded = 0;
  const { profile } = deps;
  const cudaConfiguredWithoutGpu = profile.wantsCuda && !deps.cudaAvailable;

  return {
    record(latencyMs) {
      const slot = recorded++ % LATENCY_WINDOW;
      recentAt[slot] = Date.now();
      recentMs[slot] = latencyMs;
    },
    report(shuttingDown) {
      const workers = deps.pool.workers();
      const failures = deps.registry.failures();
      const modelsAvailable = deps.registry.defaultModel() !== undefined;
      const issues = failures.map((failure) => `model ${failure.id}: ${failure.reason}`);
      if (cudaConfiguredWithoutGpu) issues.push("CUDA configured but unavailable; running on CPU");
      const providerChecks = deps.providers?.healthChecks() ?? [];
      for (const check of providerChecks) if (!check.healthy) issues.push(`provider ${check.name}: circuit breaker ${check.breakerState}`);
      if (workers.ready < workers.total || (workers.lastLostAt > 0 && Date.now() - workers.lastLostAt < WORKER_RECOVERY_MS)) {
        issues.push(`an inference worker was replaced (${workers.replaced} since start)`);
      }
      const state = shuttingDown || !modelsAvailable || workers.ready === 0 ? "unhealthy" : issues.length > 0 ? "degraded" : "healthy";
      const count = Math.min(recorded, LATENCY_WINDOW);
      const windowStart = Date.now() - 60_000;
      let latencySum = 0;
      let lastMinute = 0;
      for (let slot = 0; slot < count; slot++) {
        latencySum += recentMs[slot];
        if (recentAt[slot] >= windowStart) lastMinute++;
      }
      return {
        state,
        checks: {
          modelsAvailable,
          gpuAccessible: deps.cudaAvailable,
          modelCacheHealthy: failures.length === 0,
          workers: { ready: workers.ready, total: workers.total, replaced: workers.replaced },
          providers: providerChecks,
          issues: shuttingDown ? ["shutting down", ...issues] : issues,
        },
        performance: { avgLatencyMs: count > 0 ? latencySum / count : 0, requestsPerSecond: lastMinute / 60 },
        cache: cacheReport(deps.cache),
        version: deps.version,
        uptimeSeconds: (Date.now() - startedAt) / 1000,
        hardwareProfile: profile.name,
        executionProvider: profile.executionProviders[0],
        defaultModel: deps.registry.defaultModel()?.manifest.id ?? "",
        serving: deps.serving,
      };
    },
  };
}
