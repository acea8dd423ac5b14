import { ConnectError } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import type { AccessControl } from "../admission/access-control.js";
import type { FailureCounter } from "../observability/count-failure.js";
import type { Metrics } from "../observability/metrics.js";
import { accessOfRpc, admittedKey, principalKey } from "./access-policy.js";
import { interceptFailures } from "./intercept-failures.js";
import { codeName, embedderErrorFor } from "./to-connect-error.js";

/**
 * Server interceptor that runs the access check (authentication, role, request
 * rate) on every rpc of every RPC protocol before the handler sees its request,
 * and hands the admitted caller to the handler as the `principalKey` context
 * value; a call the early gRPC admission already admitted (`admittedKey`) is
 * not checked or charged again. Refusals are domain errors; the error
 * interceptor outside it turns them into UNAUTHENTICATED, PERMISSION_DENIED or
 * RESOURCE_EXHAUSTED.
 */
export function createAccessInterceptor(access: AccessControl): Interceptor {
  return (next) => async (request) => {
    const admitted = request.contextValues.get(admittedKey);
    const principal = admitted !== undefined ? admitted.principal : await access.admit(request.header, accessOfRpc(request.service.typeName, request.method.name));
    if (principal !== undefined) request.contextValues.set(principalKey, principal);
    return next(request);
  };
}

/**
 * Server interceptor that counts failed rpcs in `sutra_failures_total` by
 * reason, as embedderErrorFor names it (a failure after the client left is
 * CANCELLED); it sits inside the error interceptor, where failures are still
 * domain errors (errors that are already ConnectErrors are not counted).
 */
export function createFailureInterceptor(failures: FailureCounter): Interceptor {
  return interceptFailures((reason, request) => {
    if (!(reason instanceof ConnectError)) failures(embedderErrorFor(reason, request.signal));
    return reason;
  });
}

/**
 * Server interceptor that counts every rpc in `sutra_requests_total` (protocol
 * from the content type, route = the procedure path, code = the Connect code
 * name, `ok` on success) and times it in `sutra_request_duration_seconds`; a
 * streaming rpc is counted when its response stream ends. It must be the
 * outermost interceptor so that it sees the codes the error interceptor sets.
 */
export function createMetricsInterceptor(metrics: Metrics): Interceptor {
  return (next) => async (request) => {
    const started = performance.now();
    const protocol = protocolOf(request.header.get("content-type"));
    const route = `/${request.service.typeName}/${request.method.name}`;
    const record = (error?: unknown): void => {
      const code = error === undefined ? "ok" : codeName(ConnectError.from(error).code);
      metrics.recordRequest(protocol, route, code, (performance.now() - started) / 1000);
    };
    try {
      const response = await next(request);
      if (!response.stream) {
        record();
        return response;
      }
      const messages = response.message;
      return {
        ...response,
        message: (async function* countedStream() {
          try {
            yield* messages;
          } catch (error) {
            record(error);
            throw error;
          }
          record();
        })(),
      };
    } catch (error) {
      record(error);
      throw error;
    }
  };
}

function protocolOf(contentType: string | null): string {
  if (contentType === null) return "connect";
  if (/^application\/grpc-web/i.test(contentType)) return "grpc-web";
  if (/^application\/grpc/i.test(contentType)) return "grpc";
  return "connect";
}
