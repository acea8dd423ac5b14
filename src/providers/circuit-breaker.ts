/** Breaker states as health and the admin route show them. */
export type BreakerState = "closed" | "open" | "half_open";

/** What a breaker says to a request that wants to call the provider. */
export type BreakerAdmission = "pass" | "probe" | "reject";

/** A breaker's state for health and `GET /v1/embeddings/circuit-breakers`. */
export interface BreakerSnapshot {
  state: BreakerState;
  consecutiveFailures: number;
  /** Failures in a row that open it. */
  failureThreshold: number;
  cooldownMs: number;
  /** When it last opened (ms since the epoch), or null. */
  openedAt: number | null;
  /** While open: ms until a half-open probe may go. */
  retryInMs: number;
  /** Times it has opened since start. */
  opened: number;
}

/**
 * A circuit breaker for one provider: closed -> open after `failures`
 * consecutive failed upstream calls -> after `cooldownMs`, half-open: one
 * request goes through as a probe while others are still turned away -> its
 * success closes the breaker, its failure opens it for another cooldown.
 */
export interface CircuitBreaker {
  /** Whether a request may call upstream now: `pass` (closed), `probe` (this request is the half-open probe), `reject`. */
  admit(): BreakerAdmission;
  /** Whether calls may still go out (false once open, unless `probing`: the caller holds the probe). */
  allows(probing: boolean): boolean;
  recordSuccess(): void;
  recordFailure(): void;
  /** The probe ended without a verdict (cancelled, a client error): the next request may probe. */
  endProbe(): void;
  /** Closes the breaker (admin reset). */
  reset(): void;
  snapshot(): BreakerSnapshot;
}

/** Options of a breaker. */
export interface CircuitBreakerOptions {
  failures: number;
  cooldownMs: number;
  now?: () => number;
  /** Told of every change of state. */
  onChange?: (state: BreakerState) => void;
}

/** Creates a closed breaker. */
export function createCircuitBreaker(options: CircuitBreakerOptions): CircuitBreaker {
  const now = options.now ?? Date.now;
  let consecutiveFailures = 0;
  let openedAt: number | null = null;
  let probeInFlight = false;
  let opened = 0;

  const state = (): BreakerState => {
    if (openedAt === null) return "closed";
    return now() - openedAt >= options.cooldownMs ? "half_open" : "open";
  };
  const open = () => {
    openedAt = now();
    probeInFlight = false;
    opened++;
    options.onChange?.("open");
  };
  const close = () => {
    const wasClosed = openedAt === null;
    openedAt = null;
    probeInFlight = false;
    consecutiveFailures = 0;
    if (!wasClosed) options.onChange?.("closed");
  };

  return {
    admit() {
      const current = state();
      if (current === "closed") return "pass";
      if (current === "open" || probeInFlight) return "reject";
      probeInFlight = true;
      options.onChange?.("half_open");
      return "probe";
    },
    allows(probing) {
      const current = state();
      return current === "closed" || (probing && current === "half_open");
    },
    recordSuccess() {
      if (openedAt === null) consecutiveFailures = 0;
      else if (state() === "half_open") close();
    },
    recordFailure() {
      consecutiveFailures++;
      const current = state();
      if (current === "half_open" || (current === "closed" && consecutiveFailures >= options.failures)) open();
    },
    endProbe() {
      probeInFlight = false;
    },
    reset: close,
    snapshot() {
      const current = state();
      return {
        state: current,
        consecutiveFailures,
        failureThreshold: options.failures,
        cooldownMs: options.cooldownMs,
        openedAt,
        retryInMs: current === "open" && openedAt !== null ? Math.max(0, openedAt + options.cooldownMs - now()) : 0,
        opened,
      };
    },
  };
}
