import { createContextKey } from "@connectrpc/connect";
import type { NodeRequest } from "./node-types.js";

/**
 * The connection an rpc arrived on, as a context value: the HTTP/2 session
 * (every stream multiplexed on one connection shares it) or the HTTP/1.1
 * socket. Bounds kept per connection (open Watch streams) count by it; only
 * its identity is used, it is never read. Undefined where no connection is
 * known (an in-memory transport).
 */
export const connectionKey = createContextKey<object | undefined>(undefined, { description: "connection" });

/**
 * The connection of a request. Take it when the request arrives: a closed
 * HTTP/2 stream forgets its session.
 */
export function connectionOf(request: NodeRequest): object {
  return "stream" in request ? (request.stream.session ?? request.socket) : request.socket;
}
