import type { Interceptor, StreamRequest, UnaryRequest } from "@connectrpc/connect";

/**
 * A server interceptor that hands every failure of an rpc to `onFailure`,
 * whether the handler threw or the failure came while its response stream was
 * iterated, and throws what `onFailure` returns (the same error, or another).
 */
export function interceptFailures(onFailure: (reason: unknown, request: UnaryRequest | StreamRequest) => unknown): Interceptor {
  return (next) => async (request) => {
    try {
      const response = await next(request);
      if (!response.stream) return response;
      const messages = response.message;
      return {
        ...response,
        message: (async function* failuresOfStream() {
          try {
            yield* messages;
          } catch (reason) {
            throw onFailure(reason, request);
          }
        })(),
      };
    } catch (reason) {
      throw onFailure(reason, request);
    }
  };
}
