import { createNormalizedReader, SEPARATOR_CODE_POINT } from "./create-normalized-reader.js";
import { createPieceTrie } from "./create-piece-trie.js";
import type { UseLiteModelJson } from "./use-lite-vocab.js";

/** When a read may stop: once more than `committed` ids are final, or every path has more than `certain` tokens. */
export interface ReadStop {
  committed: number;
  certain: number;
}

/** The reference's Viterbi over one USE-Lite vocabulary, reading texts into reused work arrays. */
export interface UseLiteViterbi {
  /** Longest piece, in code points. */
  readonly depth: number;
  /**
   * True when a read may stop before the end of its text: every backtrack step stays on
   * code-point boundaries (every piece, and the unknown id, as long in UTF-16 units as in
   * code points). When false, callers must pass no `stop`.
   */
  readonly canStopEarly: boolean;
  /**
   * Runs the Viterbi over a non-empty text and leaves its ids in `tokens()`, returning their
   * count: all of them, or with `stop` only as many as were read (see ReadStop).
   */
  read(text: string, stop: ReadStop | undefined): number;
  /** The ids of the last read (the first `count` of them); overwritten by the next read. */
  tokens(): Int32Array;
}

/** Code points decoded ahead of the Viterbi at a time. */
const FILL_CHUNK = 256;
/** First piece normalized when reading may stop early: generous, English runs about 5 characters a token. */
const NORMALIZE_CHARS_PER_TOKEN = 8;

/**
 * Growable work arrays, reused across calls (encoding is synchronous): code points, the
 * Viterbi best score, best piece and token count of the best path per end position, the
 * emitted ids and a backtrack stack.
 */
interface Scratch {
  codePoints: Int32Array;
  best: Float64Array;
  words: Int32Array;
  counts: Int32Array;
  tokens: Int32Array;
  stack: Int32Array;
}

/** Returns `scratch` with room for `size` entries per array, keeping the first `used` ones. */
function grown(scratch: Scratch, size: number, used: number): Scratch {
  let capacity = Math.max(FILL_CHUNK, scratch.codePoints.length);
  while (capacity < size) capacity *= 2;
  const copy = <T extends Int32Array | Float64Array>(from: T, to: T): T => {
    to.set(from.subarray(0, used));
    return to;
  };
  return {
    codePoints: copy(scratch.codePoints, new Int32Array(capacity)),
    best: copy(scratch.best, new Float64Array(capacity)),
    words: copy(scratch.words, new Int32Array(capacity)),
    counts: copy(scratch.counts, new Int32Array(capacity)),
    tokens: copy(scratch.tokens, new Int32Array(capacity)),
    stack: new Int32Array(capacity),
  };
}

/**
 * Backtracks the best path from `to` down to `from` (positions every path goes through) and
 * appends its ids to `tokens[0..count)`, merging runs of unknown ids. Returns the new count.
 */
function appendPath(
  words: Int32Array,
  steps: Int32Array,
  unkId: number,
  from: number,
  to: number,
  stack: Int32Array,
  tokens: Int32Array,
  count: number,
): number {
  let top = 0;
  for (let position = to; position > from; position -= steps[words[position]]) stack[top++] = words[position];
  let appended = count;
  while (top > 0) {
    const id = stack[--top];
    if (id === unkId && appended > 0 && tokens[appended - 1] === unkId) continue;
    tokens[appended++] = id;
  }
  return appended;
}

/** The position in `[from, to]` whose best path has the fewest tokens. */
function fewestTokensIn(counts: Int32Array, from: number, to: number): number {
  let fewest = to;
  for (let position = from; position < to; position++) if (counts[position] < counts[fewest]) fewest = position;
  return fewest;
}

/**
 * Creates the Viterbi of a checked USE-Lite model (see `readUseLiteModel`), with the
 * reference's rules (the tokenizer's JSDoc lists them): code points from the normalized
 * reader after a leading `▁`, pieces from the trie, unknown code points scoring 0, a 0 best
 * counting as unset, ties to the later candidate, backtrack steps of each piece's UTF-16
 * length. `maxTokens` sizes the first piece normalized when a read may stop early.
 */
export function createUseLiteViterbi(model: UseLiteModelJson, maxTokens: number): UseLiteViterbi {
  const unkId = model.unk_id;
  const trie = createPieceTrie(model.vocab, model.reserved_count);
  const { edges, depth, rootEdge, edgeOf } = trie;
  const scores = Float64Array.from(model.vocab, ([, score]) => score);
  const steps = Int32Array.from(model.vocab, ([piece]) => piece.length);
  const canStopEarly = trie.bmpOnly && steps[unkId] === 1;
  let scratch: Scratch = grown(
    {
      codePoints: new Int32Array(0),
      best: new Float64Array(0),
      words: new Int32Array(0),
      counts: new Int32Array(0),
      tokens: new Int32Array(0),
      stack: new Int32Array(0),
    },
    FILL_CHUNK,
    0,
  );

  const read = (text: string, stop: ReadStop | undefined): number => {
    const reader = createNormalizedReader(text, stop === undefined ? text.length : maxTokens * NORMALIZE_CHARS_PER_TOKEN);
    let { codePoints, best, words, counts, tokens, stack } = scratch;
    codePoints[0] = SEPARATOR_CODE_POINT;
    best[0] = 0;
    words[0] = 0;
    best[1] = 0;
    words[1] = 0;
    counts[0] = 0;
    let filled = 1;
    let reach = 0;
    let committedTo = 0;
    let count = 0;

    for (let start = 0; ; start++) {
      if (filled < start + depth && reader.hasMore()) {
        const target = start + depth + FILL_CHUNK;
        if (target + 1 > codePoints.length) {
          scratch = grown(scratch, target + 1, filled + 1);
          ({ codePoints, best, words, counts, tokens, stack } = scratch);
        }
        while (filled < target && reader.hasMore()) {
          codePoints[filled++] = reader.next();
          best[filled] = 0;
          words[filled] = 0;
        }
      }
      if (start >= filled) break;
      if (stop !== undefined) {
        if (start > 0) {
          // Every piece ending here was scored by now: the tokens of the best path to `start`, unknown runs merged as appendPath merges them.
          const previous = start - steps[words[start]];
          counts[start] = previous > 0 ? counts[previous] + (words[start] === unkId && words[previous] === unkId ? 0 : 1) : 1;
        }
        if (reach === start && start > committedTo) {
          count = appendPath(words, steps, unkId, committedTo, start, stack, tokens, count);
          committedTo = start;
          if (count > stop.committed) return count;
        }
        if (counts[start] > stop.certain) {
          // The whole text's path covers this code point with one token, so it goes through one of these positions.
          const through = fewestTokensIn(counts, Math.max(committedTo, start - depth + 1), start);
          if (counts[through] > stop.certain) return appendPath(words, steps, unkId, committedTo, through, stack, tokens, count);
        }
      }
      const first = codePoints[start];
      let edge = first < rootEdge.length ? rootEdge[first] : edgeOf(0, first);
      let matched = false;
      for (let end = start + 1; edge !== -1; end++) {
        const id = edges[edge + 3];
        if (id !== -1) {
          matched = true;
          const score = scores[id] + best[start];
          if (best[end] === 0 || score >= best[end]) {
            best[end] = score;
            words[end] = id;
          }
          if (end > reach) reach = end;
        }
        if (end >= filled) break;
        edge = edgeOf(edges[edge + 2], codePoints[end]);
      }
      if (!matched) {
        const score = best[start]; // an unknown code point scores 0
        if (best[start + 1] === 0 || score >= best[start + 1]) {
          best[start + 1] = score;
          words[start + 1] = unkId;
        }
        if (start + 1 > reach) reach = start + 1;
      }
    }
    return appendPath(words, steps, unkId, committedTo, filled, stack, tokens, count);
  };

  return { depth, canStopEarly, read, tokens: () => scratch.tokens };
}
