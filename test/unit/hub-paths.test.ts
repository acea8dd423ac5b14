import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { containedPath, HubDownloadError } from "../../src/models/hub/download-hub-model.js";
import { isCommitId } from "../../src/models/hub/hub-listing.js";

/** The two checks that keep values from a hub out of paths outside the models folder. */

describe("containedPath", () => {
  const root = resolve("/srv/models/.downloads");

  it("gives the absolute path of a name inside the root", () => {
    expect(containedPath(root, `tiny--model@${"a".repeat(40)}`)).toBe(join(root, `tiny--model@${"a".repeat(40)}`));
    expect(containedPath("/srv/models/./.downloads/", "onnx/model.onnx.part")).toBe(join(root, "onnx", "model.onnx.part"));
    expect(containedPath(root, "a/../b")).toBe(join(root, "b"));
    expect(containedPath(root, "..name")).toBe(join(root, "..name"));
  });

  it.each([
    ["x/../../../victim"],
    ["tiny--model@x/../../../victim"],
    [".."],
    ["../.downloads-evil/file"],
    ["/etc/passwd"],
    ["."],
    [""],
    ["a/../.."],
  ])("refuses %j: it resolves to the root itself or outside it", (name) => {
    expect(() => containedPath(root, name)).toThrow(HubDownloadError);
    expect(() => containedPath(root, name)).toThrow(/leaves the folder it belongs in/);
  });
});

describe("isCommitId", () => {
  it("accepts exactly 40 lowercase hex characters", () => {
    expect(isCommitId("0123456789abcdef0123456789abcdef01234567")).toBe(true);
  });

  it.each([
    ["x/../../../victim"],
    ["1234abcd"],
    ["main"],
    ["a".repeat(39)],
    ["a".repeat(41)],
    ["A".repeat(40)],
    [`${"a".repeat(39)}g`],
    [`${"a".repeat(40)}\n`],
    [""],
  ])("refuses %j", (sha) => {
    expect(isCommitId(sha)).toBe(false);
  });
});
