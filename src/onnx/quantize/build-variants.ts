import { access, rename, rm, writeFile } from "node:fs/promises";
import { join, posix } from "node:path";
import * as ort from "onnxruntime-node";
import type { ModelProto } from "../../../gen/onnx/onnx_pb.js";
import type { ModelVariant, Pooling, Precision, QualityGateResult } from "../../models/manifest.js";
import { encodeModel, readModel } from "../model-io.js";
import { convertWeightsToFloat16, type Float16WeightOptions } from "./fp16-weights.js";
import { quantizeMatMulsInt4, type Int4BlockwiseOptions } from "./int4-blockwise.js";
import { quantizeMatMulsInt8, type Int8DynamicOptions } from "./int8-dynamic.js";
import {
  BATCH_INVARIANCE_TOLERANCE,
  QUALITY_THRESHOLDS,
  collectCalibrationRows,
  judgeQuality,
  measureBatchDependence,
  type CalibrationFeeds,
  type QualityThreshold,
  type RowSelection,
  type VariantPrecision,
} from "./quality-gate.js";

/** File name of each variant, written next to the fp32 file (the model folder of docs/MODELS.md). */
export const VARIANT_FILES: Readonly<Record<VariantPrecision, string>> = {
  fp16: "model_fp16.onnx",
  int8: "model_int8.onnx",
  int4: "model_int4.onnx",
};

/** Where {@link buildPrecisionVariants} reports what it wrote and what it refused (pino-compatible). */
export interface VariantLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

/** Options of {@link buildPrecisionVariants}. */
export interface BuildVariantsOptions extends Pick<RowSelection, "output" | "maskInput"> {
  /** Inputs the gate runs fp32 and each candidate on (a few dozen varied texts is typical). */
  calibrationFeeds: CalibrationFeeds;
  /** Variants to build; default fp16, int8 and int4. */
  precisions?: readonly VariantPrecision[];
  /** The fp32 file relative to `modelDir`; default `model.onnx`, else `onnx/model.onnx` (Hugging Face layout). */
  sourceFile?: string;
  /** How the gate turns a [batch, sequence, dims] output into rows; see {@link RowSelection}. */
  pooling?: Pooling;
  /** Overrides of {@link QUALITY_THRESHOLDS}. */
  thresholds?: Partial<Record<VariantPrecision, QualityThreshold>>;
  fp16?: Float16WeightOptions;
  /**
   * In the int8 and int4 variants, also store the float weights the quantizer left (embedding
   * tables, MatMuls kept in float32) as float16, as the fp16 variant does. Default true: it
   * roughly halves what quantization leaves behind, and the gate judges the combination.
   */
  float16Remainder?: boolean;
  int8?: Int8DynamicOptions;
  int4?: Int4BlockwiseOptions;
  /**
   * What the int4 variant does with the MatMuls `int4.exclude` keeps out of 4 bits: `float`
   * (default) leaves them in float, `int8` quantizes them like the int8 variant (mixed 4/8-bit,
   * for models whose sensitive layers fail the int4 gate in 4 bits).
   */
  int4Remainder?: "float" | "int8";
  /**
   * Session options of the gate's sessions; default 1 intra-op thread (deterministic, and gentle
   * on a shared install host) and all graph optimizations.
   */
  sessionOptions?: ort.InferenceSession.SessionOptions;
  logger?: VariantLogger;
}

/** The outcome for one precision. */
export interface VariantBuildResult {
  precision: VariantPrecision;
  /** The variant's path relative to `modelDir` (written or not). */
  file: string;
  /** True when the variant passed its gate and is on disk. */
  written: boolean;
  /** The gate's verdict; absent when there was nothing to convert. */
  gate?: QualityGateResult;
  /**
   * Largest difference between a calibration text's unit-length rows alone and inside its batch
   * (measured once the cosine gate passed); above {@link BATCH_INVARIANCE_TOLERANCE} the variant
   * is refused.
   */
  batchDependence?: number;
  /** Why the variant was not written. */
  reason?: string;
  /** Size of the encoded variant in bytes (0 when not built). */
  sizeBytes: number;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

async function resolveSource(modelDir: string, sourceFile?: string): Promise<string> {
  if (sourceFile) return sourceFile;
  for (const candidate of ["model.onnx", "onnx/model.onnx"]) if (await exists(join(modelDir, candidate))) return candidate;
  throw new Error(`buildPrecisionVariants: no model.onnx or onnx/model.onnx in ${modelDir}`);
}

/** Ops whose float inputs are quantization parameters that must stay float32 initializers. */
const QUANTIZED_OPS = new Set(["MatMulIntegerToFloat", "MatMulNBits"]);

function float16Remainder(quantized: ModelProto, options: BuildVariantsOptions): ModelProto {
  if (options.float16Remainder === false) return quantized;
  const parameters = (quantized.graph?.node ?? []).filter((node) => QUANTIZED_OPS.has(node.opType)).flatMap((node) => node.input);
  return convertWeightsToFloat16(quantized, { ...options.fp16, exclude: [...(options.fp16?.exclude ?? []), ...parameters] }).model;
}

function convert(model: ModelProto, precision: VariantPrecision, options: BuildVariantsOptions): { model: ModelProto; changed: number } {
  switch (precision) {
    case "fp16": {
      const result = convertWeightsToFloat16(model, options.fp16);
      return { model: result.model, changed: result.converted };
    }
    case "int8": {
      const result = quantizeMatMulsInt8(model, options.int8);
      return { model: float16Remainder(result.model, options), changed: result.quantized };
    }
    case "int4": {
      const result = quantizeMatMulsInt4(model, options.int4);
      const mixed = options.int4Remainder === "int8" ? quantizeMatMulsInt8(result.model, options.int8).model : result.model;
      return { model: float16Remainder(mixed, options), changed: result.quantized };
    }
  }
}

/** Writes via a temporary file and a rename, so a reader never sees half a model. */
async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}`;
  await writeFile(temporary, bytes);
  await rename(temporary, path);
}

/**
 * Builds the weight-precision variants of the fp32 model in `modelDir` (docs/MODELS.md, "Precision variants"): each
 * candidate is converted in memory, run against fp32 on the calibration feeds, and written as
 * `model_fp16.onnx` / `model_int8.onnx` / `model_int4.onnx` next to the fp32 file only if it passes
 * its quality gate and a batch-invariance check (each batch's first texts alone vs in the batch,
 * {@link measureBatchDependence}). A variant that fails is not written, a stale file of that name is removed (it
 * would no longer match its fp32 model), and the reason is logged and returned. Recording the
 * results in the manifest is the caller's job ({@link toManifestVariants}).
 */
export async function buildPrecisionVariants(modelDir: string, options: BuildVariantsOptions): Promise<VariantBuildResult[]> {
  const sourceFile = await resolveSource(modelDir, options.sourceFile);
  const fp32 = await readModel(join(modelDir, sourceFile));
  const sessionOptions: ort.InferenceSession.SessionOptions = options.sessionOptions ?? { intraOpNumThreads: 1, graphOptimizationLevel: "all" };
  const selection: RowSelection = { output: options.output, maskInput: options.maskInput, pooling: options.pooling };
  const referenceSession = await ort.InferenceSession.create(encodeModel(fp32), sessionOptions);
  const reference = await collectCalibrationRows(referenceSession, options.calibrationFeeds, selection).finally(() => referenceSession.release());
  const results: VariantBuildResult[] = [];
  for (const precision of options.precisions ?? (["fp16", "int8", "int4"] as const)) {
    const file = posix.join(posix.dirname(sourceFile), VARIANT_FILES[precision]);
    const path = join(modelDir, file);
    const converted = convert(fp32, precision, options);
    let result: VariantBuildResult;
    if (converted.changed === 0) {
      result = { precision, file, written: false, reason: "no weights to convert", sizeBytes: 0 };
    } else {
      const bytes = encodeModel(converted.model);
      const session = await ort.InferenceSession.create(bytes, sessionOptions);
      try {
        const candidate = await collectCalibrationRows(session, options.calibrationFeeds, selection);
        const gate = judgeQuality(reference, candidate, options.thresholds?.[precision] ?? QUALITY_THRESHOLDS[precision]);
        if (!gate.passed) {
          result = { precision, file, written: false, gate, reason: `quality gate failed: ${gate.reason}`, sizeBytes: bytes.length };
        } else {
          const batchDependence = await measureBatchDependence(session, options.calibrationFeeds, selection);
          if (batchDependence > BATCH_INVARIANCE_TOLERANCE) {
            result = {
              precision, file, written: false, gate, batchDependence, sizeBytes: bytes.length,
              reason: `batch dependent: a text alone and in its batch differ by ${batchDependence.toExponential(2)} > ${BATCH_INVARIANCE_TOLERANCE}`,
            };
          } else {
            await writeAtomically(path, bytes);
            result = { precision, file, written: true, gate, batchDependence, sizeBytes: bytes.length };
          }
        }
      } finally {
        await session.release();
      }
    }
    if (result.written) {
      options.logger?.info({ modelDir, precision, file, sizeBytes: result.sizeBytes, gate: result.gate, batchDependence: result.batchDependence }, "precision variant written");
    } else {
      const stale = await exists(path);
      if (stale) await rm(path);
      options.logger?.warn({ modelDir, precision, file, reason: result.reason, gate: result.gate, removedStaleFile: stale }, "precision variant not written");
    }
    results.push(result);
  }
  return results;
}

/** The manifest `variants` entries of the written variants, with their gate results. */
export function toManifestVariants(results: readonly VariantBuildResult[]): Partial<Record<Precision, ModelVariant>> {
  return Object.fromEntries(results.filter((result) => result.written).map((result) => [result.precision, { file: result.file, gate: result.gate }]));
}
