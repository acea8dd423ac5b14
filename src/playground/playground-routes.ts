import type { HttpRoute } from "../api/create-http-handler.js";
import { bundlePlayground, readBuiltPlayground, type PlaygroundBundle } from "./build-playground.js";

/**
 * Only this origin's scripts and API; inline styles for the heatmap's
 * colours; nothing else (the page loads no fonts or scripts from elsewhere).
 */
const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The playground routes (open, like the page of any web app; the page's API
 * calls pass the access check like any client's): `GET /` (the HTTP handler
 * reads the root as `/index.html`) the page, and `GET /playground.js` its script. The bundle is the one `npm ci` built into
 * `build/playground/` (scripts/build-web.ts); when that is missing (a
 * checkout that skipped install scripts) it is bundled in memory on the
 * first request, once.
 */
export function createPlaygroundRoutes(load: () => Promise<PlaygroundBundle> = loadPlayground): HttpRoute[] {
  let bundle: Promise<PlaygroundBundle> | undefined;
  const get = (): Promise<PlaygroundBundle> => {
    bundle ??= load().catch((error: unknown) => {
      bundle = undefined;
      throw error;
    });
    return bundle;
  };
  const send = (response: Parameters<HttpRoute["handle"]>[0]["response"], contentType: string, body: string): void => {
    response.statusCode = 200;
    response.setHeader("content-type", contentType);
    response.setHeader("content-length", Buffer.byteLength(body));
    response.setHeader("cache-control", "no-cache");
    response.setHeader("x-content-type-options", "nosniff");
    response.setHeader("content-security-policy", CONTENT_SECURITY_POLICY);
    response.end(body);
  };
  return [
    { method: "GET", path: "/index.html", access: "open", handle: async ({ response }) => send(response, "text/html; charset=utf-8", (await get()).html) },
    { method: "GET", path: "/playground.js", access: "open", handle: async ({ response }) => send(response, "text/javascript; charset=utf-8", (await get()).script) },
  ];
}

async function loadPlayground(): Promise<PlaygroundBundle> {
  return (await readBuiltPlayground()) ?? bundlePlayground();
}
