import { describe, expect, it } from "vitest";
import { negotiateStreamFormat } from "../../src/api/rest/write-rest-stream.js";

describe("REST stream format by Accept", () => {
  it.each([
    [undefined, "ndjson"],
    ["", "ndjson"],
    ["*/*", "ndjson"],
    ["application/json", "ndjson"],
    ["application/x-ndjson", "ndjson"],
    ["text/event-stream", "sse"],
    ["Text/Event-Stream; charset=utf-8", "sse"],
    ["application/x-ndjson, text/event-stream;q=0.5", "ndjson"],
    ["application/x-ndjson;q=0.2, text/event-stream", "sse"],
    ["text/*, application/x-ndjson;q=0.9", "sse"],
    ["text/event-stream;q=0, */*", "ndjson"],
  ])("Accept %j gives %s", (accept, format) => {
    expect(negotiateStreamFormat(accept)).toBe(format);
  });
});
