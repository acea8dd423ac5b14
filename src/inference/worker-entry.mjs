// The worker entry for runs from the TypeScript sources (vitest, tsx): piscina loads
// workers with Node's own loader, which cannot read TypeScript, so this registers tsx
// and then hands piscina the worker's handler. The compiled build (dist/) loads
// worker.js directly and never loads this file (see pool.ts).
import { register } from "tsx/esm/api";

register();
const worker = await import("./worker.ts");

export default worker.default;
