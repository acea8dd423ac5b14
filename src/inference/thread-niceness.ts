import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";

/**
 * Niceness of the inference threads. The main thread admits, tokenizes and
 * answers every request; when it waits for a CPU behind a worker, every
 * client waits. At +10 the kernel runs the main thread first whenever both
 * want a core, and the workers take all the rest (with nothing else to run,
 * a niced thread runs at full speed).
 */
export const INFERENCE_THREAD_NICENESS = 10;

/**
 * Sets the calling thread's niceness, on Linux, where `setpriority` takes a
 * thread id (read from /proc/thread-self) and affects that thread and the
 * threads it starts later (onnxruntime's intra-op pool). Raising it is always
 * allowed; lowering it again needs the privilege to. Elsewhere, or when the
 * kernel refuses, nothing changes and it returns false.
 */
export function setThreadNiceness(niceness: number): boolean {
  try {
    const threadId = Number(readlinkSync("/proc/thread-self").split("/").pop());
    if (!Number.isInteger(threadId) || threadId <= 0) return false;
    setPriority(threadId, niceness);
    return true;
  } catch {
    return false;
  }
}
