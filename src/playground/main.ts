/**
 * The playground page's script (bundled by esbuild into /playground.js): a
 * Connect web client (the SDK's connect-web entry) that embeds the texts a
 * person types, then draws their cosine similarity heatmap and each text's
 * nearest neighbours. Every cell carries its exact value in
 * `data-similarity`, so a browser test can compare it with the API's.
 */
import { createWebClient, errorReason, HealthStatus, ModelStatus, nearestNeighbours, similarityMatrix, type SutraClient } from "../client/web.js";

const byId = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const form = byId<HTMLFormElement>("form");
const textsInput = byId<HTMLTextAreaElement>("texts");
const modelInput = byId<HTMLInputElement>("model");
const tokenInput = byId<HTMLInputElement>("token");
const button = byId<HTMLButtonElement>("compute");
const status = byId<HTMLParagraphElement>("status");
const results = byId<HTMLDivElement>("results");
const heatmap = byId<HTMLTableElement>("heatmap");
const neighbours = byId<HTMLOListElement>("neighbours");
const health = byId<HTMLSpanElement>("health");

/** Most texts the page embeds at once (the heatmap is texts x texts). */
const MAX_TEXTS = 32;

const clientFor = (token: string): SutraClient => createWebClient({ baseUrl: window.location.origin, token: token || undefined, retry: { maxAttempts: 3 } });

function setStatus(text: string, state: "idle" | "busy" | "done" | "error"): void {
  status.textContent = text;
  status.dataset.state = state;
  document.body.dataset.state = state;
}

/** Background colour of a cell: white at similarity <= 0 to the accent blue at 1. */
function cellColour(similarity: number): string {
  const t = Math.max(0, Math.min(1, similarity));
  const mix = (from: number, to: number): number => Math.round(from + (to - from) * t);
  return `rgb(${mix(244, 52)}, ${mix(246, 84)}, ${mix(251, 209)})`;
}

const shorten = (text: string, length = 28): string => (text.length > length ? `${text.slice(0, length - 1)}…` : text);

function element<K extends keyof HTMLElementTagNameMap>(tag: K, properties: Partial<HTMLElementTagNameMap[K]> = {}, children: Array<Node | string> = []): HTMLElementTagNameMap[K] {
  const node = Object.assign(document.createElement(tag), properties);
  node.append(...children);
  return node;
}

function drawHeatmap(texts: string[], matrix: number[][]): void {
  const head = element("thead", {}, [element("tr", {}, [element("th"), ...texts.map((text, index) => element("th", { title: text }, [`#${index + 1}`]))])]);
  const body = element(
    "tbody",
    {},
    matrix.map((row, rowIndex) =>
      element("tr", {}, [
        element("th", { title: texts[rowIndex] }, [`#${rowIndex + 1} ${shorten(texts[rowIndex])}`]),
        ...row.map((similarity, column) => {
          const cell = element("td", { className: "cell", title: `${texts[rowIndex]}\n${texts[column]}\n${similarity}` }, [similarity.toFixed(3)]);
          cell.dataset.row = String(rowIndex);
          cell.dataset.column = String(column);
          cell.dataset.similarity = String(similarity);
          cell.style.background = cellColour(similarity);
          cell.style.color = similarity > 0.6 ? "#fff" : "inherit";
          return cell;
        }),
      ]),
    ),
  );
  heatmap.replaceChildren(head, body);
}

function drawNeighbours(texts: string[], matrix: number[][]): void {
  const lists = nearestNeighbours(matrix, 3);
  neighbours.replaceChildren(
    ...texts.map((text, index) => {
      const item = element("li", {}, [
        element("span", { className: "text" }, [text]),
        element(
          "ul",
          {},
          lists[index].map((neighbour) => {
            const line = element("li", {}, [element("span", { className: "score" }, [neighbour.similarity.toFixed(3)]), ` #${neighbour.index + 1} ${texts[neighbour.index]}`]);
            line.dataset.neighbour = String(neighbour.index);
            line.dataset.similarity = String(neighbour.similarity);
            return line;
          }),
        ),
      ]);
      item.dataset.index = String(index);
      return item;
    }),
  );
}

async function compute(): Promise<void> {
  const texts = textsInput.value.split("\n").map((line) => line.trim()).filter(Boolean);
  if (texts.length < 2) {
    setStatus("Type at least two texts, one per line.", "error");
    return;
  }
  if (texts.length > MAX_TEXTS) {
    setStatus(`At most ${MAX_TEXTS} texts at once.`, "error");
    return;
  }
  button.disabled = true;
  setStatus(`Embedding ${texts.length} texts…`, "busy");
  try {
    const started = performance.now();
    const response = await clientFor(tokenInput.value.trim()).embed({ texts, model: modelInput.value.trim() });
    const elapsed = performance.now() - started;
    const matrix = similarityMatrix(response.embeddings.map((embedding) => embedding.values));
    drawHeatmap(texts, matrix);
    drawNeighbours(texts, matrix);
    results.hidden = false;
    const info = response.modelInfo;
    setStatus(`${info?.modelId ?? "?"} · ${info?.dimensions ?? "?"} dimensions · ${info?.precision ?? "?"} · ${response.usage?.promptTokens ?? 0} tokens · ${Math.round(elapsed)} ms`, "done");
  } catch (error) {
    const reason = errorReason(error);
    setStatus(`${error instanceof Error ? error.message : String(error)}${reason ? ` (${reason})` : ""}`, "error");
  } finally {
    button.disabled = false;
  }
}

async function loadServerFacts(): Promise<void> {
  const client = clientFor("");
  try {
    const report = await client.getHealth();
    const name = HealthStatus[report.status]?.toLowerCase() ?? "unknown";
    health.dataset.status = name;
    health.textContent = `${name} · ${report.defaultModel} · ${report.executionProvider} · v${report.version}`;
  } catch {
    health.dataset.status = "unreachable";
    health.textContent = "server unreachable";
  }
  try {
    const { models } = await client.listModels({});
    const usable = models.filter((model) => model.status === ModelStatus.LOADED || model.status === ModelStatus.READY);
    byId<HTMLDataListElement>("models").replaceChildren(...usable.map((model) => element("option", { value: model.id }, [`${model.dimensions} dims`])));
  } catch {
    // The model list needs a key in api-key or jwt mode; typing a model id still works.
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  void compute();
});
setStatus("", "idle");
void loadServerFacts();
