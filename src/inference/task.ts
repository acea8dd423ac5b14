import type { Pooling } from "../models/manifest.js";

/** An int64 input tensor as it crosses the thread boundary. */
export interface TaskTensor {
  data: BigInt64Array;
  dims: number[];
}

/** Session options a worker applies when it first opens a model file. */
export interface SessionSettings {
  intraOpThreads: number;
  /** Execution providers in order of preference, e.g. ["cuda", "cpu"]. */
  executionProviders: string[];
}

/**
 * One inference batch for a worker: plain data only, so it crosses threads by
 * structured clone (inputs) and transfer (outputs). `pooling` tells the worker
 * how to turn `output` into one vector per row (`none`: the graph already did).
 */
export interface InferenceTask {
  modelFile: string;
  inputs: Record<string, TaskTensor>;
  output: string;
  pooling: Pooling;
  settings: SessionSettings;
}

/** A worker's answer: `batch` rows of `dimensions` floats, row-major, not normalised by the worker. */
export interface InferenceResult {
  embeddings: Float32Array;
  batch: number;
  dimensions: number;
  inferenceMs: number;
  /** The execution provider the session really uses. */
  executionProvider: string;
}
