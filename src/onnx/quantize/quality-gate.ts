import * as ort from "onnxruntime-node";
import type { Pooling, Precision, QualityGateResult } from "../../models/manifest.js";

/** One batch of model inputs, keyed by graph input name. */
export type Feeds = Record<string, ort.Tensor>;

/**
 * Calibration inputs: batches given up front, or a function that produces them (called once per
 * model judged, so it must yield the same batches every time).
 */
export type CalibrationFeeds = readonly Feeds[] | (() => Iterable<Feeds> | AsyncIterable<Feeds>);

/** Cosine thresholds a variant must reach against fp32 (min over all rows; mean where set). */
export interface QualityThreshold {
  min: number;
  mean?: number;
}

/** Precisions derived from fp32, each judged against it. */
export type VariantPrecision = Exclude<Precision, "fp32">;

/** The quality gate's thresholds (cosine against fp32), per variant precision (docs/DEFAULT-MODEL.md). */
export const QUALITY_THRESHOLDS: Readonly<Record<VariantPrecision, QualityThreshold>> = {
  fp16: { min: 0.9999 },
  int8: { min: 0.995, mean: 0.998 },
  int4: { min: 0.98 },
};

/** Which output and which of its rows the gate compares. */
export interface RowSelection {
  /** Output to compare; default the session's first output. */
  output?: string;
  /**
   * How a [batch, sequence, dims] output becomes rows: `mean`, `cls` (first real token) or
   * `last-token` pool each text over its `attention_mask`; unset or `none` compares every real
   * token's row. A [batch, dims] output is compared row by row whatever this says.
   */
  pooling?: Pooling;
  /** Mask input marking real tokens; default `attention_mask` (all tokens real when absent). */
  maskInput?: string;
}

/** Rows a model produced on the calibration set, ready to compare. */
export interface CalibrationRows {
  rows: Float32Array[];
  /** Texts (batch rows) in the calibration set. */
  texts: number;
}

async function* iterateFeeds(feeds: CalibrationFeeds): AsyncGenerator<Feeds> {
  const source = typeof feeds === "function" ? feeds() : feeds;
  for await (const batch of source as AsyncIterable<Feeds>) yield batch;
}

function realTokens(batch: Feeds, maskInput: string, sequence: number): (row: number, token: number) => boolean {
  const mask = batch[maskInput];
  if (!mask) return () => true;
  const data = mask.data as BigInt64Array | Int32Array | Float32Array;
  return (row, token) => Number(data[row * sequence + token]) !== 0;
}

function poolText(data: Float32Array, row: number, sequence: number, dims: number, pooling: Pooling, isReal: (row: number, token: number) => boolean): Float32Array {
  const real: number[] = [];
  for (let token = 0; token < sequence; token++) if (isReal(row, token)) real.push(token);
  const pooled = new Float32Array(dims);
  if (real.length === 0) return pooled;
  const tokens = pooling === "cls" ? [real[0]] : pooling === "last-token" ? [real[real.length - 1]] : real;
  for (const token of tokens) {
    const offset = (row * sequence + token) * dims;
    for (let dim = 0; dim < dims; dim++) pooled[dim] += data[offset + dim];
  }
  for (let dim = 0; dim < dims; dim++) pooled[dim] /= tokens.length;
  return pooled;
}

/** Runs one batch and returns the compared rows grouped by text (see {@link RowSelection}). */
async function rowsPerText(session: ort.InferenceSession, batch: Feeds, selection: RowSelection): Promise<Float32Array[][]> {
  const outputName = selection.output ?? session.outputNames[0];
  const output = (await session.run(batch, [outputName]))[outputName];
  const data = output.data as Float32Array;
  const dims = output.dims.map(Number);
  const width = dims[dims.length - 1];
  const batchSize = dims.length > 1 ? dims[0] : 1;
  const texts: Float32Array[][] = [];
  if (dims.length === 3) {
    const sequence = dims[1];
    const isReal = realTokens(batch, selection.maskInput ?? "attention_mask", sequence);
    for (let row = 0; row < batchSize; row++) {
      if (selection.pooling && selection.pooling !== "none") {
        texts.push([poolText(data, row, sequence, width, selection.pooling, isReal)]);
        continue;
      }
      const tokens: Float32Array[] = [];
      for (let token = 0; token < sequence; token++) {
        if (isReal(row, token)) tokens.push(data.slice((row * sequence + token) * width, (row * sequence + token + 1) * width));
      }
      texts.push(tokens);
    }
  } else {
    for (let offset = 0; offset < data.length; offset += width) texts.push([data.slice(offset, offset + width)]);
  }
  return texts;
}

/** Runs `session` over the calibration set and returns the rows the gate compares (see {@link RowSelection}). */
export async function collectCalibrationRows(session: ort.InferenceSession, feeds: CalibrationFeeds, selection: RowSelection = {}): Promise<CalibrationRows> {
  const rows: Float32Array[] = [];
  let texts = 0;
  for await (const batch of iterateFeeds(feeds)) {
    const perText = await rowsPerText(session, batch, selection);
    texts += perText.length;
    for (const textRows of perText) rows.push(...textRows);
  }
  return { rows, texts };
}

/** The batch-invariance bar: a text's (unit-length) vector alone and inside any batch differ by at most this, at every precision. */
export const BATCH_INVARIANCE_TOLERANCE = 1e-6;

/** Row `row` of every input whose first dimension is the batch; other inputs pass unchanged. */
function sliceBatch(batch: Feeds, row: number, batchSize: number): Feeds {
  return Object.fromEntries(Object.entries(batch).map(([name, tensor]) => {
    if (tensor.dims.length === 0 || tensor.dims[0] !== batchSize) return [name, tensor];
    const rowSize = tensor.size / batchSize;
    // Every tensor data type (typed arrays, string[]) slices the same way; the casts only name one.
    const rowData = (tensor.data as Float32Array).slice(row * rowSize, (row + 1) * rowSize);
    return [name, new ort.Tensor(tensor.type as "float32", rowData, [1, ...tensor.dims.slice(1)])];
  }));
}

function unitLength(vector: Float32Array): Float64Array {
  let norm = 0;
  for (const value of vector) norm += value * value;
  norm = Math.sqrt(norm) || 1;
  return Float64Array.from(vector, (value) => value / norm);
}

/**
 * Measures how much a text's output depends on its batch-mates: for the first `textsPerBatch`
 * texts of each calibration batch, runs the text alone (its row of every batch input, same
 * padded length) and returns the largest absolute difference between its unit-length rows alone
 * and in the batch. Batch invariance means at most {@link BATCH_INVARIANCE_TOLERANCE}.
 */
export async function measureBatchDependence(
  session: ort.InferenceSession,
  feeds: CalibrationFeeds,
  selection: RowSelection & { textsPerBatch?: number } = {},
): Promise<number> {
  let worst = 0;
  for await (const batch of iterateFeeds(feeds)) {
    const inBatch = await rowsPerText(session, batch, selection);
    for (let text = 0; text < Math.min(inBatch.length, selection.textsPerBatch ?? 4); text++) {
      const [alone] = await rowsPerText(session, sliceBatch(batch, text, inBatch.length), selection);
      if (alone.length !== inBatch[text].length) return Infinity;
      for (let row = 0; row < alone.length; row++) {
        const a = unitLength(alone[row]);
        const b = unitLength(inBatch[text][row]);
        for (let index = 0; index < a.length; index++) worst = Math.max(worst, Math.abs(a[index] - b[index]));
      }
    }
  }
  return worst;
}

/** Cosine similarity in double precision; two zero vectors count as identical, one zero vector as 0. */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let index = 0; index < a.length; index++) {
    dot += a[index] * b[index];
    normA += a[index] * a[index];
    normB += b[index] * b[index];
  }
  if (normA === 0 && normB === 0) return 1;
  if (normA === 0 || normB === 0) return 0;
  return dot / Math.sqrt(normA * normB);
}

/**
 * Compares a candidate's rows with the reference's, row by row, and judges them against
 * `threshold`. A non-finite cosine (NaN or Infinity in an output) fails the gate.
 */
export function judgeQuality(reference: CalibrationRows, candidate: CalibrationRows, threshold: QualityThreshold): QualityGateResult {
  if (reference.rows.length !== candidate.rows.length || reference.rows.length === 0) {
    return {
      passed: false, minCosine: Number.NaN, meanCosine: Number.NaN, thresholdMin: threshold.min, thresholdMean: threshold.mean,
      calibrationTexts: reference.texts,
      reason: `row count differs or is zero (reference ${reference.rows.length}, candidate ${candidate.rows.length})`,
    };
  }
  let minCosine = Infinity;
  let sum = 0;
  for (let index = 0; index < reference.rows.length; index++) {
    const cosine = cosineSimilarity(reference.rows[index], candidate.rows[index]);
    minCosine = Number.isNaN(cosine) ? Number.NaN : Math.min(minCosine, cosine);
    sum += cosine;
  }
  const meanCosine = sum / reference.rows.length;
  const failures: string[] = [];
  if (!Number.isFinite(minCosine) || !Number.isFinite(meanCosine)) failures.push("non-finite values in the candidate's output");
  else {
    if (minCosine < threshold.min) failures.push(`min cosine ${minCosine.toFixed(6)} < ${threshold.min}`);
    if (threshold.mean !== undefined && meanCosine < threshold.mean) failures.push(`mean cosine ${meanCosine.toFixed(6)} < ${threshold.mean}`);
  }
  return {
    passed: failures.length === 0,
    minCosine,
    meanCosine,
    thresholdMin: threshold.min,
    ...(threshold.mean === undefined ? {} : { thresholdMean: threshold.mean }),
    calibrationTexts: reference.texts,
    ...(failures.length === 0 ? {} : { reason: failures.join("; ") }),
  };
}

/** Options of {@link runQualityGate}. */
export interface QualityGateOptions extends RowSelection {
  reference: ort.InferenceSession;
  candidate: ort.InferenceSession;
  feeds: CalibrationFeeds;
  threshold: QualityThreshold;
}

/**
 * The quality gate: runs the fp32 reference and the candidate over the calibration feeds and
 * passes the candidate when the cosine of every compared row (min) and their mean reach the
 * threshold. Rows are what {@link RowSelection} says (pooled texts, or every real token).
 */
export async function runQualityGate(options: QualityGateOptions): Promise<QualityGateResult> {
  const reference = await collectCalibrationRows(options.reference, options.feeds, options);
  const candidate = await collectCalibrationRows(options.candidate, options.feeds, options);
  return judgeQuality(reference, candidate, options.threshold);
}
