import { USE_LITE_SEPARATOR } from "./use-lite-vocab.js";

/** The USE-Lite word separator `▁` as a code point: the normalizer's leading one, and every U+0020. */
export const SEPARATOR_CODE_POINT = USE_LITE_SEPARATOR.codePointAt(0) as number;

const SPACE = 0x20;

/** The code points of a text as the USE-Lite normalizer gives them after its leading `▁`, read one at a time. */
export interface NormalizedReader {
  /** True while code points remain. */
  hasMore(): boolean;
  /** The next code point; call only while `hasMore()`. */
  next(): number;
}

/** Where a piece of `text` to normalize ends: before the first U+0020 at or after `from`. */
function pieceEndAfter(text: string, from: number): number {
  const space = from >= text.length ? -1 : text.indexOf(" ", from);
  return space === -1 ? text.length : space;
}

/**
 * Creates a reader of `text` (non-empty) NFKC-normalized, each U+0020 given as `▁`. The text
 * is normalized in pieces cut before a U+0020 (NFKC(a + " " + b) is NFKC(a) + NFKC(" " + b):
 * a space composes with nothing and blocks reordering), the first about `firstPieceChars`
 * long and each next one twice as long as the last, so a caller that stops reading early,
 * as a window taken from the start of a long text does, has not normalized all of it.
 */
export function createNormalizedReader(text: string, firstPieceChars: number): NormalizedReader {
  let pieceChars = firstPieceChars;
  let pieceEnd = pieceEndAfter(text, pieceChars);
  let normalized = text.slice(0, pieceEnd).normalize("NFKC");
  let unit = 0;
  return {
    hasMore: () => unit < normalized.length || pieceEnd < text.length,
    next() {
      if (unit === normalized.length) {
        pieceChars *= 2;
        const from = pieceEnd;
        pieceEnd = pieceEndAfter(text, from + pieceChars);
        normalized = text.slice(from, pieceEnd).normalize("NFKC");
        unit = 0;
      }
      const codePoint = normalized.codePointAt(unit) as number;
      unit += codePoint > 0xffff ? 2 : 1;
      return codePoint === SPACE ? SEPARATOR_CODE_POINT : codePoint;
    },
  };
}
