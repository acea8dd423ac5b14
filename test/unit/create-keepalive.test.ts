import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createKeepalive } from "../../src/api/websocket/create-keepalive.js";

describe("createKeepalive", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("pings every interval and gives up at the next ping time after two unanswered", () => {
    const pings: string[] = [];
    const onSilent = vi.fn();
    const keepalive = createKeepalive({ intervalMs: 1_000, ping: (id) => pings.push(id), onSilent });
    vi.advanceTimersByTime(2_000);
    expect(pings).toEqual(["ping-1", "ping-2"]);
    expect(onSilent).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1_000);
    expect(onSilent).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(5_000);
    expect(pings).toHaveLength(2);
    expect(onSilent).toHaveBeenCalledTimes(1);
    keepalive.stop();
  });

  it("a pong naming any ping sent clears the unanswered ones; an unknown ping_id does not", () => {
    const pings: string[] = [];
    const onSilent = vi.fn();
    const keepalive = createKeepalive({ intervalMs: 1_000, ping: (id) => pings.push(id), onSilent });
    for (let round = 0; round < 10; round++) {
      vi.advanceTimersByTime(2_000);
      keepalive.answered(pings[pings.length - 2]);
    }
    expect(onSilent).not.toHaveBeenCalled();
    keepalive.answered("ping-999");
    keepalive.answered(42);
    vi.advanceTimersByTime(3_000);
    expect(onSilent).toHaveBeenCalledTimes(1);
    keepalive.stop();
  });

  it("stop ends the pings", () => {
    const ping = vi.fn();
    createKeepalive({ intervalMs: 1_000, ping, onSilent: vi.fn() }).stop();
    vi.advanceTimersByTime(10_000);
    expect(ping).not.toHaveBeenCalled();
  });
});
