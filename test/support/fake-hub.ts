import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { listFolderFiles } from "../../src/models/hf-folder.js";

/** One file a fake repository serves. */
export interface FakeHubFile {
  path: string;
  bytes: Buffer;
  /** Stored with LFS (listed with sha256) rather than in git (listed with a blob id). */
  lfs: boolean;
}

/** A repository of the fake hub, with the faults a test wants. */
export interface FakeHubRepo {
  id: string;
  commit: string;
  files: FakeHubFile[];
  /** File names added to the listing only (e.g. `../escape.json`). */
  extraListing?: string[];
  /** The listing claims this sha256 for every LFS file (a corrupted upload). */
  wrongSha256?: string;
  /** Drop the connection once, halfway through this file's first full download. */
  dropHalfwayOnce?: string;
  /** Delay per 64 KiB chunk of resolve answers, ms (to watch progress). */
  chunkDelayMs?: number;
  /**
   * A hostile hub: the listing names this commit instead of `commit` (e.g. `x/../../../victim`),
   * and the resolve route serves the files at it.
   */
  listedSha?: string;
  /**
   * A hostile hub: this file is listed with its real size and checksums but served `bodyBytes`
   * long (its content, then zeros), with a matching `content-length` or, when `announceLength`
   * is false, chunked with none.
   */
  overlongBody?: { path: string; bodyBytes: number; announceLength: boolean };
}

/** A request the fake hub received. */
export interface FakeHubRequest {
  method: string;
  path: string;
  range?: string;
  authorization?: string;
  /** Body bytes the hub handed to the socket before the answer ended or the client went away. */
  bytesSent: number;
}

/** A local HTTP server speaking the hub's model-info and resolve routes. */
export interface FakeHub {
  url: string;
  requests: FakeHubRequest[];
  add(repo: FakeHubRepo): void;
  close(): Promise<void>;
}

/** Reads a model folder into fake-hub files: `.onnx` files go to LFS, the rest to git. */
export async function filesOfFolder(dir: string): Promise<FakeHubFile[]> {
  const files: FakeHubFile[] = [];
  for (const path of await listFolderFiles(dir)) files.push({ path, bytes: await readFile(join(dir, path)), lfs: path.endsWith(".onnx") });
  return files;
}

const gitBlobId = (bytes: Buffer) => createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");
const CHUNK = 64 * 1024;

/** Waits until `response` can take more bytes; false when the client went away first. */
function writable(response: ServerResponse): Promise<boolean> {
  if (response.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const drained = () => settle(true);
    const closed = () => settle(false);
    const settle = (value: boolean) => {
      response.off("drain", drained).off("close", closed);
      resolve(value);
    };
    response.once("drain", drained).once("close", closed);
  });
}

/**
 * Starts a fake Hugging Face hub on 127.0.0.1 port 0: `GET /api/models/{repo}/revision/{rev}`
 * answers the listing (`sha`, `siblings` with `size`, `blobId` and `lfs.sha256` as the hub's
 * `?blobs=true` does) and `GET /{repo}/resolve/{rev}/{path}` the file, honouring `Range`
 * (206), able to drop a connection halfway once, and, for hostile-hub tests, to list a chosen
 * commit and to send a body longer than the listing declares. It counts the body bytes of
 * every answer (`bytesSent`).
 */
export async function startFakeHub(): Promise<FakeHub> {
  const repos = new Map<string, FakeHubRepo>();
  const dropped = new Set<string>();
  const requests: FakeHubRequest[] = [];

  const listing = (repo: FakeHubRepo) => ({
    id: repo.id,
    sha: repo.listedSha ?? repo.commit,
    siblings: [
      ...repo.files.map((file) => ({
        rfilename: file.path,
        size: file.bytes.length,
        blobId: gitBlobId(file.bytes),
        ...(file.lfs ? { lfs: { sha256: repo.wrongSha256 ?? sha256(file.bytes), size: file.bytes.length, pointerSize: 134 } } : {}),
      })),
      ...(repo.extraListing ?? []).map((name) => ({ rfilename: name, size: 2, blobId: gitBlobId(Buffer.from("{}")) })),
    ],
  });

  const serveFile = async (request: IncomingMessage, response: ServerResponse, repo: FakeHubRepo, file: FakeHubFile, record: FakeHubRequest) => {
    const overlong = repo.overlongBody?.path === file.path ? repo.overlongBody : undefined;
    const total = Math.max(overlong?.bodyBytes ?? 0, file.bytes.length);
    // Bytes [from, to) of the answer: the file, then zeros up to an overlong body's length (made per chunk).
    const bytesAt = (from: number, to: number) =>
      to <= file.bytes.length ? file.bytes.subarray(from, to) : Buffer.concat([file.bytes.subarray(from, to), Buffer.alloc(to - Math.max(from, file.bytes.length))]);
    const range = /^bytes=(\d+)-$/.exec(request.headers.range ?? "");
    const start = range ? Number(range[1]) : 0;
    if (start >= total && total > 0) {
      response.writeHead(416, { "content-range": `bytes */${total}` }).end();
      return;
    }
    response.writeHead(range ? 206 : 200, {
      ...(overlong?.announceLength === false ? {} : { "content-length": String(total - start) }),
      "content-type": "application/octet-stream",
      "accept-ranges": "bytes",
      ...(range ? { "content-range": `bytes ${start}-${total - 1}/${total}` } : {}),
      "x-repo-commit": repo.commit,
    });
    const dropAt = repo.dropHalfwayOnce === file.path && !dropped.has(`${repo.id}/${file.path}`) && start === 0 ? Math.floor(total / 2) : -1;
    for (let offset = start; offset < total; offset += CHUNK) {
      const end = Math.min(total, offset + CHUNK);
      if (dropAt >= 0 && end >= dropAt) {
        dropped.add(`${repo.id}/${file.path}`);
        response.write(bytesAt(offset, dropAt));
        record.bytesSent += dropAt - offset;
        await new Promise((resolve) => setTimeout(resolve, 20));
        request.socket.destroy();
        return;
      }
      if (response.destroyed) return;
      const flushed = response.write(bytesAt(offset, end));
      record.bytesSent += end - offset;
      if (!flushed && !(await writable(response))) return;
      if (repo.chunkDelayMs) await new Promise((resolve) => setTimeout(resolve, repo.chunkDelayMs));
    }
    response.end();
  };

  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://hub");
    const path = decodeURIComponent(url.pathname);
    const record: FakeHubRequest = { method: request.method ?? "", path, range: request.headers.range, authorization: request.headers.authorization, bytesSent: 0 };
    requests.push(record);
    const info = /^\/api\/models\/(.+)\/revision\/([^/]+)$/.exec(path);
    if (info) {
      const repo = repos.get(info[1]);
      if (!repo) return void response.writeHead(404).end("{}");
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(listing(repo)));
      return;
    }
    for (const repo of repos.values()) {
      const prefix = `/${repo.id}/resolve/`;
      if (!path.startsWith(prefix)) continue;
      const rest = path.slice(prefix.length);
      const revision = [repo.commit, "main", repo.listedSha].find((candidate) => candidate !== undefined && rest.startsWith(`${candidate}/`));
      const file = revision === undefined ? undefined : repo.files.find((candidate) => candidate.path === rest.slice(revision.length + 1));
      if (!file) return void response.writeHead(404).end();
      void serveFile(request, response, repo, file, record);
      return;
    }
    response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    add: (repo) => void repos.set(repo.id, repo),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
