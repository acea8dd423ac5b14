/**
 * A chunk of a document: UTF-16 offsets (what JavaScript slices with), the
 * same offsets in code points (what GetJobResults reports), and the tokens the
 * model sees for the chunk as embedded (prompt and special tokens included).
 */
export interface ChunkSpan {
  start: number;
  end: number;
  startChar: number;
  endChar: number;
  tokens: number;
}

/** How to measure text for chunking, in tokens of the target model. */
export interface ChunkMeasure {
  /** Tokens of a text alone, special tokens included (the tokenizer with truncation off). */
  countTokens(text: string): number;
  /** Tokens of the text as embedded (with the job's instruction or prompt), special tokens included. */
  countEmbedded(text: string): number;
  /** Special tokens every encoding carries (the count of the empty text). */
  specialTokens: number;
  /** The model window: `countEmbedded` of a chunk never exceeds it. */
  maxTokens: number;
}

/** Chunking limits, in tokens: see ChunkingOptions. */
export interface ChunkLimits {
  chunkSize: number;
  chunkOverlap: number;
}

/** A run of non-space text between two cuts; `sentenceEnd` when a sentence or paragraph ends after it. */
interface Piece {
  start: number;
  end: number;
  sentenceEnd: boolean;
  /** Content tokens of the piece alone (special tokens not counted), measured on first use. */
  tokens?: number;
}

const SENTENCE_END = /[.!?\u2026\u3002\uff01\uff1f][)\]"'\u2019\u201d\u00bb]*$/u;
/** Distinct words whose token counts are remembered while a document is cut (natural text repeats most words). */
const WORD_CACHE_SIZE = 65_536;
/** Below this share of chunk_size, a chunk does not stop early at a sentence end. */
const SENTENCE_FILL = 0.5;

/**
 * Cuts a text into chunks by tokens of the target model, lazily (one chunk per
 * `next()`, so a caller can yield to the event loop between chunks).
 *
 * Cuts fall between words (runs of non-space characters); a word longer than
 * a chunk is cut between code points. A chunk ends at the last sentence or
 * paragraph end that keeps it at least half full, else at the last word that
 * fits. Every chunk is measured exactly as it will be embedded: its own
 * tokens never exceed `chunkSize`, and with the prompt never the model window
 * (so nothing is truncated). Each chunk after the first starts with whole
 * words from the end of the one before, as many as fit in `chunkOverlap`
 * tokens (by the words' own counts), never so many that it would not move on.
 * Chunk text is `text.slice(start, end)`: no leading or trailing whitespace.
 * A text of whitespace only has no chunks.
 */
export function* chunkDocument(text: string, limits: ChunkLimits, measure: ChunkMeasure): Generator<ChunkSpan> {
  const pieces = splitPieces(text);
  const contentBudget = limits.chunkSize - measure.specialTokens;
  const wordTokens = new Map<string, number>();
  const tokensOf = (index: number): number => {
    const piece = pieces[index];
    if (piece.tokens !== undefined) return piece.tokens;
    const word = text.slice(piece.start, piece.end);
    let tokens = wordTokens.get(word);
    if (tokens === undefined) {
      tokens = Math.max(0, measure.countTokens(word) - measure.specialTokens);
      if (wordTokens.size >= WORD_CACHE_SIZE) wordTokens.clear();
      wordTokens.set(word, tokens);
    }
    piece.tokens = tokens;
    return tokens;
  };
  const fits = (start: number, end: number): number | undefined => {
    const slice = text.slice(start, end);
    if (measure.countTokens(slice) > limits.chunkSize) return undefined;
    const embedded = measure.countEmbedded(slice);
    return embedded > measure.maxTokens ? undefined : embedded;
  };
  /** Cuts piece `index` in two after the most code points that fit alone. */
  const splitPiece = (index: number): void => {
    const piece = pieces[index];
    const points = codePointEnds(text, piece.start, piece.end);
    if (points.length === 1) throw new ChunkTooSmallError(limits.chunkSize);
    let low = 0;
    let high = points.length - 1;
    while (low < high) {
      const middle = Math.ceil((low + high) / 2);
      if (fits(piece.start, points[middle - 1]) !== undefined) low = middle;
      else high = middle - 1;
    }
    if (low === 0) throw new ChunkTooSmallError(limits.chunkSize);
    const cut = points[low - 1];
    pieces.splice(index, 1, { start: piece.start, end: cut, sentenceEnd: false }, { start: cut, end: piece.end, sentenceEnd: piece.sentenceEnd });
  };
  /** The last word of a chunk from word `first` whose words' own counts fit, moved back to a sentence end when one keeps it half full. */
  const pack = (first: number, previousLast: number): number => {
    let last = first;
    let sum = tokensOf(first);
    while (last + 1 < pieces.length && sum + tokensOf(last + 1) <= contentBudget) sum += tokensOf(++last);
    if (last + 1 >= pieces.length) return last;
    for (let candidate = last; candidate > Math.max(first, previousLast); candidate--) {
      if (sum < contentBudget * SENTENCE_FILL) break;
      if (pieces[candidate].sentenceEnd) return candidate;
      sum -= tokensOf(candidate);
    }
    return last;
  };

  let codePoints = 0;
  let counted = 0;
  const charOffset = (unit: number): number => {
    codePoints += countCodePoints(text, counted, unit);
    counted = unit;
    return codePoints;
  };

  let first = 0;
  let previousLast = -1;
  while (first < pieces.length) {
    let last = pack(first, previousLast);
    if (last <= previousLast) {
      // The overlap leaves no room for the next word: start after the previous chunk.
      first = previousLast + 1;
      last = pack(first, previousLast);
    }
    // Measure exactly; drop words from the end until it fits, then the overlap, then cut a lone word.
    let tokens = fits(pieces[first].start, pieces[last].end);
    while (tokens === undefined) {
      if (last > first && last > previousLast + 1) last--;
      else if (last > first) {
        first = previousLast + 1;
        last = first;
      } else splitPiece(first);
      tokens = fits(pieces[first].start, pieces[last].end);
    }
    const start = pieces[first].start;
    const end = pieces[last].end;
    const startChar = charOffset(start);
    yield { start, end, startChar, endChar: startChar + countCodePoints(text, start, end), tokens };
    if (last + 1 >= pieces.length) return;
    previousLast = last;
    // The next chunk repeats the last words of this one that fit in the overlap (never its first word).
    let next = last + 1;
    let overlap = 0;
    while (next - 1 > first && overlap + tokensOf(next - 1) <= limits.chunkOverlap) overlap += tokensOf(--next);
    first = next;
  }
}

/** A single character needs more tokens than a chunk may hold. */
export class ChunkTooSmallError extends Error {
  constructor(readonly chunkSize: number) {
    super(`chunk_size ${chunkSize} cannot hold a single character of the text`);
    this.name = "ChunkTooSmallError";
  }
}

/** Words of `text`: maximal runs of non-whitespace, each marked when a sentence or paragraph ends after it. */
function splitPieces(text: string): Piece[] {
  const pieces: Piece[] = [];
  const word = /\S+/gu;
  for (let match = word.exec(text); match !== null; match = word.exec(text)) {
    const start = match.index;
    const end = start + match[0].length;
    const previous = pieces.at(-1);
    if (previous !== undefined && !previous.sentenceEnd && text.slice(previous.end, start).includes("\n")) previous.sentenceEnd = true;
    pieces.push({ start, end, sentenceEnd: SENTENCE_END.test(match[0]) });
  }
  return pieces;
}

/** UTF-16 offsets just after each code point of `text[start, end)`. */
function codePointEnds(text: string, start: number, end: number): number[] {
  const ends: number[] = [];
  for (let index = start; index < end;) {
    index += isPair(text, index, end) ? 2 : 1;
    ends.push(index);
  }
  return ends;
}

/** Code points in `text[start, end)` (a lone surrogate counts as one). */
export function countCodePoints(text: string, start: number, end: number): number {
  let count = 0;
  for (let index = start; index < end; index += isPair(text, index, end) ? 2 : 1) count++;
  return count;
}

/** Whether a surrogate pair starts at `index` and ends before `end`. */
function isPair(text: string, index: number, end: number): boolean {
  const code = text.charCodeAt(index);
  if (code < 0xd800 || code > 0xdbff || index + 1 >= end) return false;
  const next = text.charCodeAt(index + 1);
  return next >= 0xdc00 && next <= 0xdfff;
}
