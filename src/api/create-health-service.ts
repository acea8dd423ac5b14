import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Embedder, HealthState } from "../domain/types.js";
import { HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import type { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { admittedKey } from "./access-policy.js";
import { connectionKey } from "./connection-context.js";
import type { WatchLimits } from "./watch-limits.js";

/** What the gRPC health service needs. */
export interface HealthServiceOptions {
  embedder: Embedder;
  /** Service names health answers for, besides "" (the whole server). */
  services: readonly string[];
  /** How often the embedder's state is looked at for a change while Watch streams are open. */
  pollMs: number;
  /** Ends every Watch stream (the server is closing). */
  shutdownSignal: AbortSignal;
  /** Slots of open Watch streams, in all and per connection; beyond them Watch answers TOO_MANY_STREAMS. */
  watchLimits: WatchLimits;
}

/**
 * grpc.health.v1 serving status of a health state: healthy and degraded
 * still serve (SERVING), unhealthy does not (NOT_SERVING).
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
 *
 * Health is open to callers without credentials, so Watch is bounded: each
 * open Watch holds a slot of `watchLimits` (TOO_MANY_STREAMS beyond), freed
 * the moment its call ends; the early gRPC admission may have taken it already. All open Watch streams share one poll of the
 * embedder's state (one timer, one health report per `pollMs`, running only
 * while a Watch is open) instead of a timer and a report each.
 */
export function createHealthService(options: HealthServiceOptions): ServiceImpl<typeof Health> {
  const known = new Set(["", ...options.services]);
  const currentStatus = (): HealthCheckResponse_ServingStatus => servingStatusOf(options.embedder.health().state);
  const poll = createStatusPoll(currentStatus, options.pollMs, options.shutdownSignal);
  return {
    check(request) {
      if (!known.has(request.service)) {
        throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
      }
      return { status: currentStatus() };
    },
    async *watch(request, context) {
      const release = context.values.get(admittedKey)?.watchSlot ?? options.watchLimits.acquire(context.values.get(connectionKey));
      // The slot is freed when the call ends, even while this generator waits on a client that does not read.
      context.signal.addEventListener("abort", release, { once: true });
      try {
        if (!known.has(request.service)) {
          yield { status: HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN };
          await poll.changeFrom(undefined, context.signal);
          return;
        }
        let status: HealthCheckResponse_ServingStatus | undefined = poll.current();
        while (status !== undefined) {
          yield { status };
          status = await poll.changeFrom(status, context.signal);
        }
      } finally {
        context.signal.removeEventListener("abort", release);
        release();
      }
    },
  };
}

/** The serving status, polled once for every Watch stream. */
interface StatusPoll {
  /** The status now: the last poll's while one runs, else read at once. */
  current(): HealthCheckResponse_ServingStatus;
  /**
   * Resolves with the polled status once it differs from `seen`, or with
   * undefined when `signal` aborts or the server shuts down. With `seen`
   * undefined it only waits for that end (and keeps no poll running).
   */
  changeFrom(seen: HealthCheckResponse_ServingStatus | undefined, signal: AbortSignal): Promise<HealthCheckResponse_ServingStatus | undefined>;
}

interface StatusWaiter {
  seen: HealthCheckResponse_ServingStatus | undefined;
  settle(status: HealthCheckResponse_ServingStatus | undefined): void;
}

/**
 * One timer reads the status every `pollMs` while some waiter compares it,
 * and wakes the waiters it differs for; a waiter leaves the set when it is
 * woken, when its signal aborts, or at shutdown, so an ended call holds
 * nothing and no timer runs without waiters.
 */
function createStatusPoll(read: () => HealthCheckResponse_ServingStatus, pollMs: number, shutdownSignal: AbortSignal): StatusPoll {
  const waiters = new Set<StatusWaiter>();
  let comparing = 0;
  let timer: NodeJS.Timeout | undefined;
  let status = HealthCheckResponse_ServingStatus.UNKNOWN;
  const poll = (): void => {
    status = read();
    for (const waiter of waiters) if (waiter.seen !== undefined && waiter.seen !== status) waiter.settle(status);
  };
  shutdownSignal.addEventListener("abort", () => {
    for (const waiter of waiters) waiter.settle(undefined);
  }, { once: true });
  return {
    current: () => (timer === undefined ? read() : status),
    changeFrom(seen, signal) {
      if (signal.aborted || shutdownSignal.aborted) return Promise.resolve(undefined);
      return new Promise((resolve) => {
        const onAbort = (): void => waiter.settle(undefined);
        const waiter: StatusWaiter = {
          seen,
          settle(settled) {
            waiters.delete(waiter);
            signal.removeEventListener("abort", onAbort);
            if (seen !== undefined) {
              comparing -= 1;
              if (comparing === 0) {
                clearInterval(timer);
                timer = undefined;
              }
            }
            resolve(settled);
          },
        };
        waiters.add(waiter);
        signal.addEventListener("abort", onAbort, { once: true });
        if (seen === undefined) return;
        comparing += 1;
        if (timer === undefined) {
          status = read();
          timer = setInterval(poll, pollMs).unref();
        }
        if (status !== seen) waiter.settle(status);
      });
    },
  };
}
