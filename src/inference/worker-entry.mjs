// piscina loads workers as plain JavaScript: this entry registers tsx so the
// TypeScript worker runs without a build step, then hands piscina its handler.
import { register } from "tsx/esm/api";

register();
const worker = await import("./worker.ts");

export default worker.default;
