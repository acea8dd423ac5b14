import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeClient } from "../../src/client/node.js";
import { browserSuiteTitle, CHROMIUM, CHROMIUM_FLAGS, hasChromium } from "../support/chromium.js";
import { startRealService, type RunningService } from "../support/real-service.js";

const TEXTS = ["The cat sat on the mat.", "A kitten is resting on the rug.", "Stock markets fell sharply on Monday."];

const title = browserSuiteTitle("playground (GET /) in headless Chromium");

/** Cosine similarity written out on its own, to check the page's arithmetic rather than reuse it. */
function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let normA = 0;
  let normB = 0;
  a.forEach((value, index) => {
    dot += value * b[index];
    normA += value * value;
    normB += b[index] * b[index];
  });
  return dot / Math.sqrt(normA * normB);
}

describe.skipIf(!hasChromium)(title, () => {
  let running: RunningService;
  let browser: Browser;

  beforeAll(async () => {
    running = await startRealService();
    // playwright gives every launch a fresh temporary profile (user data dir).
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  });
  afterAll(async () => {
    await browser?.close();
    await running?.stop();
  });

  it("loads from the server, embeds 3 texts through Connect, and renders the API's similarity values", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
    const rpcs: Array<{ url: string; contentType: string }> = [];
    page.on("request", (request) => {
      if (request.method() === "POST") rpcs.push({ url: new URL(request.url()).pathname, contentType: request.headers()["content-type"] ?? "" });
    });
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));

    const answer = await page.goto(`${running.baseUrl}/`);
    expect(answer?.status()).toBe(200);
    expect(answer?.headers()["content-security-policy"]).toContain("connect-src 'self'");
    expect(await page.title()).toBe("Sutra Embedder playground");
    await page.waitForSelector('#health[data-status="healthy"]');

    await page.fill("#texts", TEXTS.join("\n"));
    await page.click("#compute");
    await page.waitForSelector('body[data-state="done"]', { timeout: 30_000 });

    const cells = await page.$$eval("td.cell", (nodes) =>
      nodes.map((node) => {
        const cell = node as HTMLElement;
        return { row: Number(cell.dataset.row), column: Number(cell.dataset.column), similarity: Number(cell.dataset.similarity), shown: cell.textContent };
      }),
    );
    expect(cells).toHaveLength(9);
    expect(rpcs).toContainEqual({ url: "/sutra.embedder.v1.EmbedderService/GenerateEmbeddings", contentType: "application/json" });

    const client = createNodeClient({ baseUrl: running.baseUrl });
    const response = await client.embed({ texts: TEXTS });
    client.close();
    const vectors = response.embeddings.map((embedding) => embedding.values);
    for (const cell of cells) {
      const expected = cosine(vectors[cell.row], vectors[cell.column]);
      expect(Math.abs(cell.similarity - expected)).toBeLessThanOrEqual(1e-12);
      expect(cell.shown).toBe(expected.toFixed(3));
    }
    // The two sentences about cats are each other's nearest neighbour, as the API's numbers say.
    expect(cosine(vectors[0], vectors[1])).toBeGreaterThan(cosine(vectors[0], vectors[2]));
    const nearest = await page.$$eval("ol.neighbours > li", (items) => items.map((item) => Number((item.querySelector("ul li") as HTMLElement).dataset.neighbour)));
    expect(nearest).toEqual([1, 0, cosine(vectors[2], vectors[0]) >= cosine(vectors[2], vectors[1]) ? 0 : 1]);
    expect(await page.textContent("#status")).toContain(`${response.modelInfo?.modelId} · 512 dimensions`);
    expect(errors).toEqual([]);

    const screenshot = process.env.SUTRA_PLAYGROUND_SCREENSHOT ?? join(mkdtempSync(join(tmpdir(), "sutra-playground-")), "playground.png");
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(readFileSync(screenshot).subarray(1, 4).toString()).toBe("PNG");
    await page.close();
  }, 120_000);

  it("serves the bundled script and says why when asked for too few texts", async () => {
    const script = await fetch(`${running.baseUrl}/playground.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    const page = await browser.newPage();
    await page.goto(`${running.baseUrl}/`);
    await page.fill("#texts", "only one");
    await page.click("#compute");
    await page.waitForSelector('body[data-state="error"]');
    expect(await page.textContent("#status")).toBe("Type at least two texts, one per line.");
    await page.close();
  });
});
