import type { TruncateMode } from "../domain/types.js";
import { padEncodings } from "./pad-encodings.js";
import type { Encoding, PaddingSide, Tokenizer } from "./tokenizer.js";
import { USE_LITE_MODEL_TYPE, USE_LITE_NORMALIZER, USE_LITE_SEPARATOR, type UseLiteModelJson } from "./use-lite-vocab.js";

/**
 * Piece trie over code points, as one open-addressing hash table of edges keyed by
 * (parent node, code point); node 0 is the root. Each slot holds four ints, read together:
 * parent (-1 = empty slot), code point, child node, and the id of the piece ending at the
 * child (-1 = none).
 */
interface PieceTrie {
  edges: Int32Array;
  slotMask: number;
  /** Longest piece, in code points. */
  depth: number;
  /** True when every matchable piece is as long in UTF-16 units as in code points. */
  bmpOnly: boolean;
}

const SLOT_INTS = 4;
/** Code points decoded ahead of the Viterbi at a time. */
const FILL_CHUNK = 256;
/** First piece normalized when reading may stop early: generous, English runs about 5 characters a token. */
const NORMALIZE_CHARS_PER_TOKEN = 8;
/**
 * Tokens past the window a read must show before a cut is trusted: a path found through part
 * of a text differs from the whole text's only in the few tokens next to where it was cut.
 */
const CUT_MARGIN_TOKENS = 8;
const ROOT_TABLE_SIZE = 0x10000;
const SPACE = 0x20;
const SEPARATOR = USE_LITE_SEPARATOR.codePointAt(0) as number;

function slotOf(parent: number, codePoint: number, slotMask: number): number {
  const hash = Math.imul(parent, 0x9e3779b1) ^ Math.imul(codePoint, 0x85ebca6b);
  return (hash ^ (hash >>> 15)) & slotMask;
}

/** Inserts pieces in id order from `reservedCount` up; a repeated piece keeps its last id. */
function buildTrie(vocab: ReadonlyArray<[string, number]>, reservedCount: number): PieceTrie {
  const children: Array<Map<number, number>> = [new Map()];
  const pieceAt: number[] = [-1];
  let depth = 0;
  let bmpOnly = true;
  for (let id = reservedCount; id < vocab.length; id++) {
    let node = 0;
    let length = 0;
    for (const char of vocab[id][0]) {
      const codePoint = char.codePointAt(0) as number;
      let child = children[node].get(codePoint);
      if (child === undefined) {
        child = children.length;
        children.push(new Map());
        pieceAt.push(-1);
        children[node].set(codePoint, child);
      }
      node = child;
      length++;
    }
    if (length === 0) continue;
    pieceAt[node] = id;
    depth = Math.max(depth, length);
    if (length !== vocab[id][0].length) bmpOnly = false;
  }
  let slots = 1;
  while (slots < children.length * 2) slots *= 2;
  const slotMask = slots - 1;
  const edges = new Int32Array(slots * SLOT_INTS).fill(-1);
  children.forEach((childEdges, parent) => {
    for (const [codePoint, child] of childEdges) {
      let slot = slotOf(parent, codePoint, slotMask);
      while (edges[slot * SLOT_INTS] !== -1) slot = (slot + 1) & slotMask;
      edges.set([parent, codePoint, child, pieceAt[child]], slot * SLOT_INTS);
    }
  });
  return { edges, slotMask, depth, bmpOnly };
}

function readModel(document: Record<string, unknown>): UseLiteModelJson {
  const model = document.model as Partial<UseLiteModelJson> | undefined;
  const vocab = model?.vocab;
  if (!Array.isArray(vocab) || !vocab.every((entry) => Array.isArray(entry) && typeof entry[0] === "string" && typeof entry[1] === "number")) {
    throw new Error(`${USE_LITE_MODEL_TYPE} model needs a vocab of [piece, score] pairs`);
  }
  const { unk_id: unkId, reserved_count: reservedCount } = model as UseLiteModelJson;
  if (!Number.isInteger(unkId) || unkId < 0 || unkId >= vocab.length || vocab[unkId][0].length === 0) {
    throw new Error(`${USE_LITE_MODEL_TYPE} model needs unk_id naming a non-empty vocab entry`);
  }
  if (!Number.isInteger(reservedCount) || reservedCount < 0 || reservedCount > vocab.length) {
    throw new Error(`${USE_LITE_MODEL_TYPE} model needs reserved_count within the vocab`);
  }
  if (JSON.stringify(document.normalizer) !== JSON.stringify(USE_LITE_NORMALIZER)
    || (document.pre_tokenizer ?? null) !== null
    || (document.post_processor ?? null) !== null
    || (Array.isArray(document.added_tokens) && document.added_tokens.length > 0)) {
    throw new Error(`${USE_LITE_MODEL_TYPE} supports only the reference normalizer, no pre-tokenizer, post-processor or added tokens`);
  }
  return model as UseLiteModelJson;
}

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

/** When a read may stop: once more than `committed` ids are final, or every path has more than `certain` tokens. */
interface ReadStop {
  committed: number;
  certain: number;
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

/** Where a piece of `text` to normalize ends: before the first U+0020 at or after `from`. */
function pieceEndAfter(text: string, from: number): number {
  const space = from >= text.length ? -1 : text.indexOf(" ", from);
  return space === -1 ? text.length : space;
}

/**
 * Where a tail of `text` at least `length` characters long starts: right after the last
 * U+0020 at or before `text.length - length` when one lies within another `length`
 * characters, else at that position (never between the halves of a surrogate pair).
 */
function tailStart(text: string, length: number): number {
  const at = text.length - length;
  const space = text.lastIndexOf(" ", at);
  if (space !== -1 && space >= at - length) return space + 1;
  const unit = text.charCodeAt(at);
  return unit >= 0xdc00 && unit <= 0xdfff ? at - 1 : at;
}

/** The position in `[from, to]` whose best path has the fewest tokens. */
function fewestTokensIn(counts: Int32Array, from: number, to: number): number {
  let fewest = to;
  for (let position = from; position < to; position++) if (counts[position] < counts[fewest]) fewest = position;
  return fewest;
}

/**
 * Creates the Universal Sentence Encoder Lite tokenizer from its `tokenizer.json` document
 * (see `buildUseLiteTokenizerJson`). Ids equal the reference's (`@energetic-ai/embeddings`
 * `Tokenizer.encode`) for every text, its quirks included:
 * - NFKC; a non-empty text gets a leading `▁` and every U+0020 becomes `▁`; cased;
 * - Viterbi over code points with pieces from `reserved_count` up; where no piece starts, one
 *   code point becomes `unk_id` with score 0;
 * - best scores start at 0 and a 0 best counts as unset (any later candidate replaces it),
 *   ties go to the later candidate (the shorter piece), candidates are tried by end position
 *   then start position;
 * - the backtrack steps back by each piece's UTF-16 length (as the reference does);
 * - runs of unknown ids are merged into one; the empty text has no tokens.
 *
 * A text longer than the window is read only as far as the window needs, so a 4 MB text
 * costs about what its first (or last) window does; texts within the window are always read
 * whole, with the reference's ids. This needs every piece to be as long in UTF-16 units as in
 * code points (true of the published vocabulary); otherwise every text is read whole.
 * - `end` and `none`: the Viterbi stops once more than `maxTokens` ids are final (at a
 *   position no piece crosses every path goes through it, so the ids before it are final), or
 *   once every path through the last positions read has more tokens than the window allows
 *   (`none`: `maxTokens`, so the text is refused; `end`: `maxTokens` plus a margin of 8, for
 *   a long run such as "aaaa…" that no position divides; its first ids then come from the best
 *   path through the part read). The rest of the text is neither normalized nor read, and
 *   `fullLength` is a lower bound, still more than `maxTokens`.
 * - `start`: a tail of `(maxTokens + 8) × longest piece` characters, doubled until it holds
 *   more than `maxTokens + 8` tokens. It starts after a space where one is near: no piece of
 *   the published vocabulary crosses a space, so the tail's ids are the whole text's (float
 *   rounding of the scores a best path carries aside); else between code points, the margin
 *   keeping the tokens the cut changes out of the window.
 */
export function createUseLiteUnigramTokenizer(
  document: Record<string, unknown>,
  options: { maxTokens: number; paddingSide: PaddingSide },
): Tokenizer {
  const model = readModel(document);
  const { maxTokens, paddingSide } = options;
  const unkId = model.unk_id;
  const trie = buildTrie(model.vocab, model.reserved_count);
  const { edges, slotMask, depth } = trie;
  /** Offset in `edges` of the edge from `parent` by `codePoint`, or -1. */
  const edgeOf = (parent: number, codePoint: number): number => {
    for (let slot = slotOf(parent, codePoint, slotMask); ; slot = (slot + 1) & slotMask) {
      const offset = slot * SLOT_INTS;
      const found = edges[offset];
      if (found === -1) return -1;
      if (found === parent && edges[offset + 1] === codePoint) return offset;
    }
  };
  // Every position starts at the root: a direct table for its BMP edges.
  const rootEdge = new Int32Array(ROOT_TABLE_SIZE);
  for (let codePoint = 0; codePoint < ROOT_TABLE_SIZE; codePoint++) rootEdge[codePoint] = edgeOf(0, codePoint);
  const scores = Float64Array.from(model.vocab, ([, score]) => score);
  const steps = Int32Array.from(model.vocab, ([piece]) => piece.length);
  // Stopping early needs every backtrack step to stay on code-point boundaries.
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

  /**
   * Runs the Viterbi over a non-empty text and leaves its ids in `scratch.tokens`, returning
   * their count: all of them, or with `stop` only as many as were read (see ReadStop).
   */
  const read = (text: string, stop: ReadStop | undefined): number => {
    // Text is normalized in pieces cut before a U+0020 (NFKC(a + " " + b) is NFKC(a) +
    // NFKC(" " + b): a space composes with nothing and blocks reordering), so a window taken
    // from the start of a long text does not normalize all of it.
    let pieceChars = stop === undefined ? text.length : maxTokens * NORMALIZE_CHARS_PER_TOKEN;
    let pieceEnd = pieceEndAfter(text, pieceChars);
    let normalized = text.slice(0, pieceEnd).normalize("NFKC");
    let { codePoints, best, words, counts, tokens, stack } = scratch;
    codePoints[0] = SEPARATOR;
    best[0] = 0;
    words[0] = 0;
    best[1] = 0;
    words[1] = 0;
    counts[0] = 0;
    let filled = 1;
    let unit = 0;
    let reach = 0;
    let committedTo = 0;
    let count = 0;

    for (let start = 0; ; start++) {
      if (filled < start + depth && (unit < normalized.length || pieceEnd < text.length)) {
        const target = start + depth + FILL_CHUNK;
        if (target + 1 > codePoints.length) {
          scratch = grown(scratch, target + 1, filled + 1);
          ({ codePoints, best, words, counts, tokens, stack } = scratch);
        }
        while (filled < target) {
          if (unit === normalized.length) {
            if (pieceEnd === text.length) break;
            pieceChars *= 2;
            const from = pieceEnd;
            pieceEnd = pieceEndAfter(text, from + pieceChars);
            normalized = text.slice(from, pieceEnd).normalize("NFKC");
            unit = 0;
          }
          const codePoint = normalized.codePointAt(unit) as number;
          unit += codePoint > 0xffff ? 2 : 1;
          codePoints[filled++] = codePoint === SPACE ? SEPARATOR : codePoint;
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
      let edge = first < ROOT_TABLE_SIZE ? rootEdge[first] : edgeOf(0, first);
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

  /** The last `maxTokens` ids (`truncate: "start"`), from a tail long enough to hold them when the text allows. */
  const encodeTail = (text: string): Encoding => {
    const enough = maxTokens + CUT_MARGIN_TOKENS;
    for (let length = canStopEarly ? enough * depth : text.length; length < text.length; length *= 2) {
      const count = read(text.slice(tailStart(text, length)), undefined);
      if (count > enough) return { ids: scratch.tokens.slice(count - maxTokens, count), truncated: true, fullLength: count };
    }
    const count = read(text, undefined);
    return { ids: scratch.tokens.slice(Math.max(0, count - maxTokens), count), truncated: count > maxTokens, fullLength: count };
  };

  const encode = (text: string, truncate: TruncateMode = "end"): Encoding => {
    // NFKC never empties a non-empty text, so only "" has no tokens (the reference adds no ▁).
    if (text.length === 0) return { ids: new Int32Array(0), truncated: false, fullLength: 0 };
    if (truncate === "start") return encodeTail(text);
    const certain = truncate === "none" ? maxTokens : maxTokens + CUT_MARGIN_TOKENS;
    const count = read(text, canStopEarly ? { committed: maxTokens, certain } : undefined);
    return {
      ids: scratch.tokens.slice(0, truncate === "none" ? count : Math.min(count, maxTokens)),
      truncated: truncate !== "none" && count > maxTokens,
      fullLength: count,
    };
  };

  return {
    vocabSize: model.vocab.length,
    maxTokens,
    paddingSide,
    padId: 0,
    modelType: USE_LITE_MODEL_TYPE,
    encode: (text, encodeOptions) => encode(text, encodeOptions?.truncate),
    encodeBatch: (texts, encodeOptions) => texts.map((text) => encode(text, encodeOptions?.truncate)),
    pad: (encodings) => padEncodings(encodings, paddingSide, 0),
  };
}
