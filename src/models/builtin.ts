import { join } from "node:path";
import { PACKAGE_ROOT } from "../package-root.js";

/** Id of the embedded default model, converted from USE-Lite at install. */
export const DEFAULT_MODEL_ID = "universal-sentence-encoder-lite";

/**
 * Folder holding the models built at install (`npm ci` runs the conversion): `build/models/` in
 * the project; independent of SUTRA_MODELS_DIR, so the default model is always available.
 */
export const BUILTIN_MODELS_DIR = join(PACKAGE_ROOT, "build", "models");
