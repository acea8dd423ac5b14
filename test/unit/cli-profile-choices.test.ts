import { describe, expect, it } from "vitest";
import { HardwareProfile } from "../../gen/sutra/embedder/v1/embedder_pb.js";
import { PROFILE_CHOICES } from "../../src/cli/commands/models-command.js";

describe("sutra models list --profile", () => {
  it("offers every HardwareProfile of the proto but UNSPECIFIED, in lowercase", () => {
    const fromProto = Object.keys(HardwareProfile).filter((name) => Number.isNaN(Number(name)) && name !== "UNSPECIFIED").map((name) => name.toLowerCase());
    expect(PROFILE_CHOICES).toEqual(fromProto);
  });
});
