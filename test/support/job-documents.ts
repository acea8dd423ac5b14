import { readFileSync } from "node:fs";
import { expect } from "vitest";

const PASSAGES = JSON.parse(readFileSync(new URL("../../bench/corpora/passages.json", import.meta.url), "utf8")) as string[];

/** A few texts that are not plain ASCII, so offsets in code points and in UTF-16 units differ. */
const NON_ASCII = ["Café naïve résumé — déjà vu.", "東京の天気は晴れです。", "Emoji 🙂🚀 in a sentence.", "Ünïcödé ﬁnal straße."];

/**
 * Deterministic documents for job tests: each about `bytes` long, passages of
 * the committed bench corpus (sentences, paragraphs) with a non-ASCII line now
 * and then, starting at a different passage per document.
 */
export function jobDocuments(count: number, bytes: number, prefix = "doc"): Array<{ id: string; text: string; metadata: { index: number; source: string } }> {
  return Array.from({ length: count }, (_, index) => {
    const parts: string[] = [];
    let size = 0;
    for (let step = 0; size < bytes; step++) {
      const passage = step % 7 === 3 ? NON_ASCII[(index + step) % NON_ASCII.length] : PASSAGES[(index * 37 + step) % PASSAGES.length];
      parts.push(passage);
      size += Buffer.byteLength(passage) + 2;
    }
    return { id: `${prefix}-${index}`, text: parts.join(index % 2 === 0 ? "\n\n" : " "), metadata: { index, source: "bench corpus" } };
  });
}

/** The code points `[start, end)` of a text, as a client in Python would slice it. */
export function sliceCodePoints(text: string, start: number, end: number): string {
  return Array.from(text).slice(start, end).join("");
}

/** One line of GET /v1/jobs/{id}/results. */
export interface JobResultLine {
  document_id: string;
  document_index: number;
  chunk_index: number;
  start_char: number;
  end_char: number;
  text: string;
  tokens: number;
  embedding: number[] | { values?: number[]; int8?: number[] };
  metadata?: Record<string, unknown>;
}

/** A job as REST answers it (`GET /v1/jobs/{id}`). */
export interface JobJson {
  id: string;
  status: string;
  progress: number;
  document_count: number;
  documents_chunked: number;
  total_chunks: number;
  completed_chunks: number;
  dispatched_chunks: number;
  total_bytes: number;
  prompt_tokens: number;
  model_id: string;
  dimensions: number;
  chunking: { chunk_size: number; chunk_overlap: number };
  error?: { code: string; message: string };
  resumes: number;
  created_at: string;
  started_at?: string;
  finished_at?: string;
  expires_at?: string;
}

/** A small REST client for the job routes of a server at `baseUrl`. */
export function jobClient(baseUrl: string, headers: Record<string, string> = {}) {
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(baseUrl + path, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, text, json: () => JSON.parse(text) as Record<string, unknown> };
  };
  return {
    call,
    async create(body: unknown): Promise<JobJson> {
      const answer = await call("POST", "/v1/jobs", body);
      if (answer.status !== 200) throw new Error(`CreateJob answered ${answer.status}: ${answer.text}`);
      return answer.json() as unknown as JobJson;
    },
    async get(id: string): Promise<JobJson> {
      const answer = await call("GET", `/v1/jobs/${id}`);
      if (answer.status !== 200) throw new Error(`GetJob answered ${answer.status}: ${answer.text}`);
      return answer.json() as unknown as JobJson;
    },
    /** Polls until the job's status is final (or `until` holds), every `everyMs`. */
    async waitFor(id: string, until: (job: JobJson) => boolean = (job) => ["completed", "failed", "cancelled"].includes(job.status), timeoutMs = 600_000, everyMs = 100): Promise<JobJson> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const job = await this.get(id);
        if (until(job)) return job;
        if (Date.now() > deadline) throw new Error(`job ${id} still ${job.status} (${job.completed_chunks}/${job.total_chunks}) after ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, everyMs));
      }
    },
    async results(id: string): Promise<JobResultLine[]> {
      const answer = await call("GET", `/v1/jobs/${id}/results`);
      if (answer.status !== 200) throw new Error(`GetJobResults answered ${answer.status}: ${answer.text}`);
      if (!answer.headers.get("content-type")?.startsWith("application/x-ndjson")) throw new Error(`results are ${answer.headers.get("content-type")}`);
      return answer.text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as JobResultLine);
    },
  };
}

/** The float values of a result's embedding (a plain array, or `values` beside other encodings). */
export const floats = (embedding: JobResultLine["embedding"]): number[] => (Array.isArray(embedding) ? embedding : embedding.values ?? []);

/**
 * Asserts the results of a completed job: every chunk exactly once, in
 * document and chunk order, with its document's id, offsets that slice the
 * document back to the chunk text, and no character of a document left out.
 */
export function checkJobResults(job: JobJson, results: JobResultLine[], documents: Array<{ id: string; text: string }>): void {
  expect(results).toHaveLength(job.total_chunks);
  expect(job.completed_chunks).toBe(job.total_chunks);
  const seen = new Set<string>();
  let previous: JobResultLine | undefined;
  for (const result of results) {
    const key = `${result.document_index}/${result.chunk_index}`;
    expect(seen.has(key), `chunk ${key} appears once`).toBe(false);
    seen.add(key);
    const document = documents[result.document_index];
    expect(result.document_id).toBe(document.id);
    expect(sliceCodePoints(document.text, result.start_char, result.end_char)).toBe(result.text);
    if (previous?.document_index === result.document_index) {
      expect(result.chunk_index).toBe(previous.chunk_index + 1);
      expect(result.start_char).toBeGreaterThan(previous.start_char);
    } else {
      expect(result.chunk_index).toBe(0);
    }
    previous = result;
  }
  documents.forEach((document, index) => {
    const characters = Array.from(document.text);
    const covered = new Uint8Array(characters.length);
    for (const result of results.filter((entry) => entry.document_index === index)) covered.fill(1, result.start_char, result.end_char);
    const missed = characters.findIndex((character, at) => /\S/u.test(character) && covered[at] === 0);
    expect(missed, `document ${index}: character ${missed} is in no chunk`).toBe(-1);
  });
}
