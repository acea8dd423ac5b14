import { describe, expect, it } from "vitest";
import { matchPathTemplate, parsePathTemplate } from "../../src/api/rest/path-template.js";

const match = (template: string, path: string) => matchPathTemplate(parsePathTemplate(template), path);

describe("google.api.http path templates", () => {
  it("matches literal paths exactly", () => {
    expect(match("/v1/embeddings", "/v1/embeddings")).toEqual({});
    expect(match("/v1/embeddings", "/v1/embeddings/extra")).toBeUndefined();
    expect(match("/v1/embeddings", "/v1/embedding")).toBeUndefined();
    expect(match("/v1/embeddings", "/v1")).toBeUndefined();
  });

  it("binds a single-segment variable and percent-decodes it, %2F included", () => {
    const template = "/v1/models/{model_id}/download";
    expect(match(template, "/v1/models/efficient/download")).toEqual({ model_id: "efficient" });
    expect(match(template, "/v1/models/Qwen%2FQwen3-Embedding-0.6B/download")).toEqual({
      model_id: "Qwen/Qwen3-Embedding-0.6B",
    });
    expect(match(template, "/v1/models/a%2fb%20c/download")).toEqual({ model_id: "a/b c" });
  });

  it("does not let a single-segment variable span a raw slash or be empty", () => {
    const template = "/v1/models/{model_id}/download";
    expect(match(template, "/v1/models/Qwen/Qwen3/download")).toBeUndefined();
    expect(match(template, "/v1/models//download")).toBeUndefined();
  });

  it("binds {var=**} to the rest of the path, keeping %2F encoded", () => {
    const template = "/v1/files/{name=**}";
    expect(match(template, "/v1/files/a/b%2Fc/d%20e")).toEqual({ name: "a/b%2Fc/d e" });
    expect(match(template, "/v1/files/one")).toEqual({ name: "one" });
    expect(match(template, "/v1/files")).toEqual({ name: "" });
    expect(match(template, "/v2/files/a")).toBeUndefined();
  });

  it("binds multi-segment variables with literals inside, and a custom verb", () => {
    const template = "/v1/{name=projects/*/models/*}:download";
    expect(match(template, "/v1/projects/p1/models/m%2F2:download")).toEqual({ name: "projects/p1/models/m%2F2" });
    expect(match(template, "/v1/projects/p1/models/m2")).toBeUndefined();
    expect(match(template, "/v1/projects/p1/other/m2:download")).toBeUndefined();
  });

  it("binds nested field paths and several variables", () => {
    expect(match("/v1/{config.batch_size}/{model}", "/v1/32/efficient")).toEqual({ "config.batch_size": "32", model: "efficient" });
  });

  it("matches nothing for broken percent-encoding", () => {
    expect(match("/v1/models/{model_id}", "/v1/models/%E0%A4%A")).toBeUndefined();
  });

  it.each(["v1/x", "/v1/{a", "/v1/a}", "/v1/**/x", "/v1/{a=**}/b", "/v1/{1bad}", "/v1//x"])("rejects the malformed template %s", (source) => {
    expect(() => parsePathTemplate(source)).toThrow(/invalid path template/);
  });
});
