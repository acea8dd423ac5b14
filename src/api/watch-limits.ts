import { EmbedderError } from "../domain/errors.js";

/** The slots of open grpc.health.v1 Watch streams, in all and per connection. */
export interface WatchLimits {
  /**
   * Takes a slot for one Watch stream on `connection` (undefined: counted in
   * all only). Throws TOO_MANY_STREAMS (`details.scope` `server` or
   * `connection`, `details.limit`) when every slot is taken. The returned
   * function frees the slot; later calls do nothing.
   */
  acquire(connection: object | undefined): () => void;
  /** Watch streams holding a slot now. */
  open(): number;
}

/**
 * Creates the Watch slots. A Watch holds a stream open for as long as its
 * client likes, and health is open to callers without credentials, so both
 * bounds apply to everyone. A connection is counted only while it holds a
 * slot: its entry goes with its last Watch.
 */
export function createWatchLimits(limits: { maxWatchStreams: number; maxWatchStreamsPerConnection: number }): WatchLimits {
  const perConnection = new Map<object, number>();
  let total = 0;
  const refuse = (scope: "server" | "connection", limit: number): EmbedderError =>
    new EmbedderError("TOO_MANY_STREAMS", `too many open health Watch streams (at most ${limit} per ${scope})`, { details: { scope, limit } });
  return {
    acquire(connection) {
      const held = connection === undefined ? 0 : (perConnection.get(connection) ?? 0);
      if (total >= limits.maxWatchStreams) throw refuse("server", limits.maxWatchStreams);
      if (held >= limits.maxWatchStreamsPerConnection) throw refuse("connection", limits.maxWatchStreamsPerConnection);
      total += 1;
      if (connection !== undefined) perConnection.set(connection, held + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        total -= 1;
        if (connection === undefined) return;
        const left = (perConnection.get(connection) ?? 1) - 1;
        if (left === 0) perConnection.delete(connection);
        else perConnection.set(connection, left);
      };
    },
    open: () => total,
  };
}
