import { EmbedderError } from "../domain/errors.js";
import type { ModelManifest } from "../models/manifest.js";

/** How a requested size is produced from the model's native vector. */
export type DimensionsPlan =
  | { policy: "native"; size: number }
  | { policy: "matryoshka"; size: number };

/**
 * Decides how to honour `dimensions` for a model: 0 or the native size ->
 * native; a size the manifest declares as Matryoshka -> truncate then
 * renormalise; anything else -> INVALID_DIMENSIONS listing the supported sizes
 * (truncating a non-Matryoshka model would silently degrade its vectors).
 */
export function resolveDimensions(requested: number, manifest: ModelManifest): DimensionsPlan {
  if (requested === 0 || requested === manifest.dimensions) return { policy: "native", size: manifest.dimensions };
  if (manifest.matryoshkaDimensions.includes(requested)) return { policy: "matryoshka", size: requested };
  const supported = [...new Set([manifest.dimensions, ...manifest.matryoshkaDimensions])].sort((a, b) => a - b);
  throw new EmbedderError(
    "INVALID_DIMENSIONS",
    `model ${manifest.id} cannot produce ${requested} dimensions; supported: ${supported.join(", ")}`,
    { details: { dimensions: requested, supported } },
  );
}
