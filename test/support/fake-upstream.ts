import http from "node:http";
import type { AddressInfo } from "node:net";

/** One call a fake upstream received. */
export interface UpstreamCallRecord {
  at: number;
  path: string;
  authorization: string | undefined;
  body: any;
  /** The texts of the call, whatever the dialect (`input`, `inputs`). */
  texts: string[];
}

/**
 * How the fake answers one call: `ok` (vectors of its size), an HTTP error
 * (`status`, optional headers and raw body), `hang` (never answers), raw text
 * with status 200 (`malformed`), or vectors of the wrong size or count.
 */
export type UpstreamBehaviour =
  | "ok"
  | "hang"
  | { status: number; headers?: Record<string, string>; body?: string }
  | { malformed: string }
  | { wrongDimensions: number }
  | { dropVectors: number };

/** A fake embeddings upstream on loopback speaking the OpenAI, TEI and HF Inference dialects. */
export interface FakeUpstream {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  calls: UpstreamCallRecord[];
  /** Decides the answer to call number `index` (0-based, over the fake's life); default always `ok`. */
  behave(decide: (index: number, call: UpstreamCallRecord) => UpstreamBehaviour): void;
  close(): Promise<void>;
}

/**
 * The vector the fake answers for a text: component 0 is the first integer in
 * the text (or -1), the others 1/(j+1), so a test can tell which text a vector
 * belongs to and that the order held.
 */
export function fakeVector(text: string, dimensions: number): number[] {
  const match = /\d+/.exec(text);
  return Array.from({ length: dimensions }, (_, j) => (j === 0 ? (match ? Number(match[0]) : -1) : 1 / (j + 1)));
}

/**
 * Starts a fake upstream serving `dimensions`-sized vectors: `POST
 * /v1/embeddings` (OpenAI: {input} -> {data, usage}), `POST /embed` (TEI:
 * {inputs} -> number[][]), `POST /models/.../pipeline/feature-extraction` (HF
 * Inference). It records every call. Hanging calls end when the fake closes.
 */
export async function startFakeUpstream(dimensions: number): Promise<FakeUpstream> {
  const calls: UpstreamCallRecord[] = [];
  let decide: (index: number, call: UpstreamCallRecord) => UpstreamBehaviour = () => "ok";
  const hanging = new Set<http.ServerResponse>();
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
      const texts: string[] = body.input ?? body.inputs ?? [];
      const call: UpstreamCallRecord = { at: Date.now(), path: request.url ?? "", authorization: request.headers.authorization, body, texts };
      const index = calls.length;
      calls.push(call);
      const behaviour = decide(index, call);
      if (behaviour === "hang") {
        hanging.add(response);
        return;
      }
      const send = (status: number, text: string, headers: Record<string, string> = {}) => {
        response.writeHead(status, { "content-type": "application/json", ...headers });
        response.end(text);
      };
      if (typeof behaviour === "object" && "status" in behaviour) {
        send(behaviour.status, behaviour.body ?? JSON.stringify({ error: { message: `fake ${behaviour.status}` } }), behaviour.headers);
        return;
      }
      if (typeof behaviour === "object" && "malformed" in behaviour) {
        send(200, behaviour.malformed);
        return;
      }
      const size = typeof behaviour === "object" && "wrongDimensions" in behaviour ? behaviour.wrongDimensions : dimensions;
      const answered = typeof behaviour === "object" && "dropVectors" in behaviour ? texts.slice(behaviour.dropVectors) : texts;
      const vectors = answered.map((text) => fakeVector(text, size));
      if (call.path.endsWith("/embeddings")) {
        const tokens = texts.reduce((sum, text) => sum + text.length, 0);
        // Shuffled on purpose: OpenAI-compatible servers may answer out of order; `index` says where each belongs.
        const data = vectors.map((embedding, index) => ({ object: "embedding", index, embedding })).reverse();
        send(200, JSON.stringify({ object: "list", data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } }));
      } else send(200, JSON.stringify(vectors));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    behave(next) {
      decide = next;
    },
    async close() {
      for (const response of hanging) response.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
