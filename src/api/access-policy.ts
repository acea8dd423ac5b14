import { createContextKey } from "@connectrpc/connect";
import type { AccessLevel } from "../admission/access-control.js";
import type { Principal } from "../domain/types.js";

/**
 * Context value holding the caller of a request once the access check admitted
 * it (undefined for open routes and in-memory routers without the check), so
 * service implementations can hand it to the pipeline with the request.
 */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "sutra principal" });

/**
 * Context value set when the access check already ran for this call before
 * connect took it (createEarlyGrpcAdmission in refuse-grpc-early.ts): the admitted caller, so the
 * access interceptor does not authenticate or charge the rate limit twice.
 */
export const admittedKey = createContextKey<EarlyAdmitted | undefined>(undefined, { description: "sutra admitted caller" });

/** A call the early admission let through. */
export interface EarlyAdmitted {
  /** The caller (undefined for open rpcs). */
  principal: Principal | undefined;
  /** For grpc.health.v1 Watch: the slot taken for it, freed by calling this (at the latest when its stream closes). */
  watchSlot?: () => void;
}

/** Rpcs anyone may call: health checks, so probes and load balancers need no credentials. */
const OPEN_RPCS = new Set(["grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch", "sutra.embedder.v1.EmbedderService/GetHealth"]);

/** Rpcs that change the server's state for everyone: the admin role only. */
const ADMIN_RPCS = new Set(["sutra.embedder.v1.EmbedderService/DownloadModel"]);

/**
 * The one access table of the rpcs (their REST routes follow it too): health is
 * open, DownloadModel needs `admin`, everything else (embedding, models,
 * server reflection) needs an authenticated caller.
 */
export function accessOfRpc(typeName: string, methodName: string): AccessLevel {
  const procedure = `${typeName}/${methodName}`;
  if (OPEN_RPCS.has(procedure)) return "open";
  return ADMIN_RPCS.has(procedure) ? "admin" : "user";
}
