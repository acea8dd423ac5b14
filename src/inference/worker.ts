import { performance } from "node:perf_hooks";
import * as ort from "onnxruntime-node";
import { BroadcastChannel, workerData } from "node:worker_threads";
import { move, transferableSymbol, valueSymbol } from "piscina";
import { INFERENCE_THREAD_NICENESS, setThreadNiceness } from "./thread-niceness.js";
import { poolTokens } from "./pooling.js";
import type { InferenceResult, InferenceTask, SessionSettings } from "./task.js";

interface OpenSession {
  session: ort.InferenceSession;
  executionProvider: string;
  /** Batches running on the session; a release waits for them. */
  running: number;
  released: boolean;
}

const sessions = new Map<string, Promise<OpenSession>>();

setThreadNiceness(INFERENCE_THREAD_NICENESS);

/**
 * Closes this thread's sessions of every model file under `dir` (the registry unloaded the
 * model). A session busy with a batch is closed when the batch ends; the next batch for the
 * model, after a reload, opens a fresh one.
 */
async function releaseSessionsUnder(dir: string): Promise<void> {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  for (const [key, pending] of [...sessions]) {
    if (!key.startsWith(prefix)) continue;
    sessions.delete(key);
    const open = await pending.catch(() => undefined);
    if (open === undefined || open.released) continue;
    open.released = true;
    if (open.running === 0) await open.session.release();
  }
}

const sessionChannelName = (workerData as { sessionChannel?: string } | undefined)?.sessionChannel;
if (sessionChannelName) {
  const channel = new BroadcastChannel(sessionChannelName);
  channel.unref();
  channel.onmessage = (event) => {
    const { release } = (event as { data: { release?: unknown } }).data;
    if (typeof release === "string") void releaseSessionsUnder(release);
  };
}

/**
 * Opens a session with the preferred execution providers, falling back to CPU
 * when a provider library is missing (onnxruntime throws for `cuda` without the
 * CUDA provider files, even with `cpu` listed after it).
 */
async function openSession(modelFile: string, settings: SessionSettings): Promise<OpenSession> {
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: settings.intraOpThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
    executionMode: "sequential",
  };
  const preferred = settings.executionProviders.filter((provider) => provider !== "cpu");
  if (preferred.length > 0) {
    try {
      const session = await ort.InferenceSession.create(modelFile, { ...options, executionProviders: [...preferred, "cpu"] });
      return { session, executionProvider: preferred[0], running: 0, released: false };
    } catch {
      // The provider is unavailable on this host; the pool reports the CPU fallback.
    }
  }
  const session = await ort.InferenceSession.create(modelFile, { ...options, executionProviders: ["cpu"] });
  return { session, executionProvider: "cpu", running: 0, released: false };
}

function sessionFor(modelFile: string, settings: SessionSettings): Promise<OpenSession> {
  const key = `${modelFile}|${settings.executionProviders.join(",")}|${settings.intraOpThreads}`;
  let pending = sessions.get(key);
  if (!pending) {
    pending = openSession(modelFile, settings);
    pending.catch(() => sessions.delete(key));
    sessions.set(key, pending);
  }
  return pending;
}

/**
 * Runs one batch: opens (once per thread) or reuses the session, feeds the int64
 * inputs, pools token outputs with the attention mask, and returns the vectors
 * as a transferred Float32Array. Output tensors are released before returning.
 */
async function runTask(task: InferenceTask): Promise<InferenceResult> {
  const open = await sessionFor(task.modelFile, task.settings);
  const { session, executionProvider } = open;
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of Object.entries(task.inputs)) {
    if (session.inputNames.includes(name)) feeds[name] = new ort.Tensor("int64", tensor.data, tensor.dims);
  }
  const started = performance.now();
  open.running++;
  let outputs: ort.InferenceSession.OnnxValueMapType;
  try {
    outputs = await session.run(feeds, [task.output]);
  } finally {
    if (--open.running === 0 && open.released) void open.session.release();
  }
  const inferenceMs = performance.now() - started;
  const output = outputs[task.output];
  try {
    const mask = task.inputs.attention_mask?.data ?? new BigInt64Array(0);
    const pooled = poolTokens(output.data as Float32Array, output.dims, mask, task.pooling);
    const embeddings = pooled.embeddings === output.data ? new Float32Array(pooled.embeddings) : pooled.embeddings;
    const result: InferenceResult = { ...pooled, embeddings, inferenceMs, executionProvider };
    return move({ [transferableSymbol]: [embeddings.buffer], [valueSymbol]: result } as never) as unknown as InferenceResult;
  } finally {
    output.dispose();
  }
}

export default runTask;
