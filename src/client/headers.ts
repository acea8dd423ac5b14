import type { Interceptor } from "@connectrpc/connect";

/**
 * Sets the request headers every call carries: `authorization: Bearer
 * <token>` (API key or JWT; the server takes both that way) and any extra
 * ones. Headers a call sets itself win.
 */
export function headerInterceptor(token: string | undefined, headers: Record<string, string> = {}): Interceptor {
  const all = { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) };
  return (next) => (request) => {
    for (const [name, value] of Object.entries(all)) {
      if (!request.header.has(name)) request.header.set(name, value);
    }
    return next(request);
  };
}
