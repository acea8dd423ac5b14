// The inference worker plus one test hook: a task `{ crash: true }` makes the thread exit at once,
// as a crashed worker would. Piscina loads plain JavaScript, so tsx is registered first.
import { register } from "tsx/esm/api";

register();
const runTask = await (await import("../../src/inference/worker.ts")).default;

export default function runTaskOrCrash(task) {
  if (task.crash === true) process.exit(1);
  return runTask(task);
}
