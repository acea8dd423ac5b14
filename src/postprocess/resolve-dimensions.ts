import { EmbedderError } from "../domain/errors.js";
import type { DimensionsPolicy } from "../domain/types.js";
import type { ModelManifest } from "../models/manifest.js";

/** Every dimensions policy, in the order the docs list them (the `--dimensions-policy` choices). */
export const DIMENSIONS_POLICIES = ["reduce", "pad", "ignore", "reject"] as const satisfies readonly DimensionsPolicy[];

/**
 * How a requested size is produced from the model's native vector, as the
 * answer reports it (`dimensions_policy`, `X-Embeddings-Dimensions-Policy`):
 * `native` (the size the model gives), `matryoshka` (a size it was trained
 * to be cut to), `reduce` (cut below the native size), `pad` (zeros above it)
 * or `ignore` (the native size although another was asked).
 */
export type DimensionsPlan = { policy: "native" | "matryoshka" | "reduce" | "pad" | "ignore"; size: number };

/**
 * Decides how to honour `dimensions` for a model: 0 or the native size ->
 * native; a size the manifest declares as Matryoshka -> matryoshka, under
 * every policy; any other size as `policy` says: `reduce` below the native
 * size (above it INVALID_DIMENSIONS naming the native size), `pad` above it
 * (below it as `reduce`: padding cannot shorten), `ignore` -> the native size,
 * `reject` -> INVALID_DIMENSIONS listing the supported sizes.
 */
export function resolveDimensions(requested: number, policy: DimensionsPolicy, manifest: ModelManifest): DimensionsPlan {
  const native = manifest.dimensions;
  if (requested === 0 || requested === native) return { policy: "native", size: native };
  if (manifest.matryoshkaDimensions.includes(requested)) return { policy: "matryoshka", size: requested };
  if (policy === "ignore") return { policy: "ignore", size: native };
  if (policy === "pad" && requested > native) return { policy: "pad", size: requested };
  const supported = [...new Set([native, ...manifest.matryoshkaDimensions])].sort((a, b) => a - b);
  if (policy === "reject") {
    throw new EmbedderError(
      "INVALID_DIMENSIONS",
      `model ${manifest.id} cannot produce ${requested} dimensions; supported: ${supported.join(", ")} (dimensions_policy reject)`,
      { details: { dimensions: requested, supported, policy } },
    );
  }
  if (requested > native) {
    throw new EmbedderError(
      "INVALID_DIMENSIONS",
      `model ${manifest.id} produces ${native} dimensions; dimensions_policy reduce cannot give ${requested}: ask for at most ${native}, or dimensions_policy pad`,
      { details: { dimensions: requested, native, supported, policy } },
    );
  }
  return { policy: "reduce", size: requested };
}
