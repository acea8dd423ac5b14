import { performance } from "node:perf_hooks";
import * as ort from "onnxruntime-node";
import { move, transferableSymbol, valueSymbol } from "piscina";
import { poolTokens } from "./pooling.js";
import type { InferenceResult, InferenceTask, SessionSettings } from "./task.js";

interface OpenSession {
  session: ort.InferenceSession;
  executionProvider: string;
}

const sessions = new Map<string, Promise<OpenSession>>();

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
      return { session, executionProvider: preferred[0] };
    } catch {
      // The provider is unavailable on this host; the pool reports the CPU fallback.
    }
  }
  const session = await ort.InferenceSession.create(modelFile, { ...options, executionProviders: ["cpu"] });
  return { session, executionProvider: "cpu" };
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
  const { session, executionProvider } = await sessionFor(task.modelFile, task.settings);
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of Object.entries(task.inputs)) {
    if (session.inputNames.includes(name)) feeds[name] = new ort.Tensor("int64", tensor.data, tensor.dims);
  }
  const started = performance.now();
  const outputs = await session.run(feeds, [task.output]);
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
