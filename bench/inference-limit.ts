/**
 * Limit A of docs/BENCHMARKS.md: tokenization plus raw onnxruntime-node
 * inference in this process's worker threads, no server, texts sorted by token
 * length and cut into batches. Each setting (threads x intra-op threads x batch
 * size) runs for a fixed time; the best one is the limit the service is judged
 * against (bench/run.ts measures it again in every round).
 */
import { Worker } from "node:worker_threads";
import type { BenchModel } from "./default-model.js";
import type { Corpus } from "./corpora.js";

/** One way to spend the cores on inference. */
export interface LimitSetting {
  /** Worker threads, each with its own session. */
  threads: number;
  intraOpThreads: number;
  batchSize: number;
}

/** A setting's measured throughput. */
export interface LimitResult extends LimitSetting {
  textsPerSecond: number;
  tokensPerSecond: number;
  /** CPU time of this process (all threads) per text: steadier than throughput on a shared machine. */
  cpuUsPerText: number;
}

/** What a limit worker thread receives. */
export interface LimitWorkerData {
  modelFile: string;
  tokenizerFile: string;
  maxTokens: number;
  output: string;
  intraOpThreads: number;
  /** This thread's share of the length-sorted batches. */
  batches: string[][];
  durationMs: number;
}

/** A limit worker's answers. */
export type LimitWorkerReport = { type: "ready" } | { type: "done"; texts: number; tokens: number; elapsedMs: number };

/**
 * Measures one setting on `corpus` for `durationMs`: the threads load their
 * sessions and warm up first, then run together. Throughput counts each text
 * once per pass and its real tokens (the model window applied).
 */
export async function measureLimitSetting(model: BenchModel, corpus: Corpus, setting: LimitSetting, durationMs: number): Promise<LimitResult> {
  const sorted = [...corpus.texts].sort((a, b) => a.tokens - b.tokens).map((entry) => entry.text);
  const shares: string[][][] = Array.from({ length: setting.threads }, () => []);
  for (let start = 0, index = 0; start < sorted.length; start += setting.batchSize, index++) {
    shares[index % setting.threads].push(sorted.slice(start, start + setting.batchSize));
  }
  const workers = shares.map((batches) => new Worker(new URL("./limit-worker-entry.mjs", import.meta.url), {
    workerData: {
      modelFile: model.modelFile,
      tokenizerFile: model.tokenizerFile,
      maxTokens: model.manifest.maxTokens,
      output: model.manifest.output,
      intraOpThreads: setting.intraOpThreads,
      batches,
      durationMs,
    } satisfies LimitWorkerData,
  }));
  const next = (worker: Worker) => new Promise<LimitWorkerReport>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  try {
    await Promise.all(workers.map(next));
    const reports = workers.map(next);
    const cpuAtStart = process.cpuUsage();
    for (const worker of workers) worker.postMessage("go");
    const done = (await Promise.all(reports)).filter((report) => report.type === "done");
    const cpu = process.cpuUsage(cpuAtStart);
    return {
      ...setting,
      cpuUsPerText: (cpu.user + cpu.system) / done.reduce((sum, report) => sum + report.texts, 0),
      textsPerSecond: done.reduce((sum, report) => sum + (report.texts * 1000) / report.elapsedMs, 0),
      tokensPerSecond: done.reduce((sum, report) => sum + (report.tokens * 1000) / report.elapsedMs, 0),
    };
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}

/** Measures every setting, one after the other, and returns the results best first. */
export async function measureInferenceLimit(model: BenchModel, corpus: Corpus, settings: LimitSetting[], durationMs: number): Promise<LimitResult[]> {
  const results: LimitResult[] = [];
  for (const setting of settings) results.push(await measureLimitSetting(model, corpus, setting, durationMs));
  return results.sort((a, b) => b.textsPerSecond - a.textsPerSecond);
}
