import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Embedder, HealthState } from "../domain/types.js";
import { HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import type { Health } from "../../gen/grpc/health/v1/health_pb.js";

/** What the gRPC health service needs. */
export interface HealthServiceOptions {
  embedder: Embedder;
  /** Service names health answers for, besides "" (the whole server). */
  services: readonly string[];
  /** How often Watch looks at the embedder's state for a change. */
  pollMs: number;
  /** Ends every Watch stream (the server is closing). */
  shutdownSignal: AbortSignal;
}

/**
 * grpc.health.v1 serving status of a health state (DESIGN section 4, "Health"):
 * healthy and degraded still serve, unhealthy does not.
 */
export function servingStatusOf(state: HealthState): HealthCheckResponse_ServingStatus {
  return state === "unhealthy" ? HealthCheckResponse_ServingStatus.NOT_SERVING : HealthCheckResponse_ServingStatus.SERVING;
}

/**
 * The standard gRPC health service, so Kubernetes probes, load balancers and
 * grpc-health-probe work unchanged. Check answers for "" and the listed
 * services (NOT_FOUND otherwise, as the protocol says); Watch sends the current
 * status at once and again whenever it changes, SERVICE_UNKNOWN for an unknown
 * service without ending the call, and ends when the client leaves or the
 * server shuts down.
 */
export function createHealthService(options: HealthServiceOptions): ServiceImpl<typeof Health> {
  const known = new Set(["", ...options.services]);
  const statusOf = (service: string): HealthCheckResponse_ServingStatus =>
    known.has(service) ? servingStatusOf(options.embedder.health().state) : HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN;
  return {
    check(request) {
      if (!known.has(request.service)) {
        throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
      }
      return { status: statusOf(request.service) };
    },
    async *watch(request, context) {
      const signal = AbortSignal.any([context.signal, options.shutdownSignal]);
      let last: HealthCheckResponse_ServingStatus | undefined;
      while (!signal.aborted) {
        const status = statusOf(request.service);
        if (status !== last) {
          yield { status };
          last = status;
        }
        try {
          await sleep(options.pollMs, undefined, { signal });
        } catch {
          return;
        }
      }
    },
  };
}
