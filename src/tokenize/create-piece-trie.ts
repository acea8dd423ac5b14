/**
 * Piece trie over code points, as one open-addressing hash table of edges keyed by
 * (parent node, code point); node 0 is the root. Each slot of `edges` holds four ints, read
 * together: parent (-1 = empty slot), code point, child node (offset + 2), and the id of the
 * piece ending at the child (offset + 3; -1 = none). Flat typed arrays, because the Viterbi
 * walks it once per code point and piece length.
 */
export interface PieceTrie {
  edges: Int32Array;
  /** Longest piece, in code points. */
  depth: number;
  /** True when every matchable piece is as long in UTF-16 units as in code points. */
  bmpOnly: boolean;
  /**
   * Offset in `edges` of the root's edge by each BMP code point (-1 = none): every position
   * starts at the root, so this direct table skips the hash for the first code point.
   * Code points from `rootEdge.length` up go through `edgeOf(0, codePoint)`.
   */
  rootEdge: Int32Array;
  /** Offset in `edges` of the edge from `parent` by `codePoint`, or -1. */
  edgeOf(parent: number, codePoint: number): number;
}

const SLOT_INTS = 4;
const ROOT_TABLE_SIZE = 0x10000;

function slotOf(parent: number, codePoint: number, slotMask: number): number {
  const hash = Math.imul(parent, 0x9e3779b1) ^ Math.imul(codePoint, 0x85ebca6b);
  return (hash ^ (hash >>> 15)) & slotMask;
}

/**
 * Builds the trie of `vocab`'s pieces, inserted in id order from `reservedCount` up (reserved
 * ids are never matched); a repeated piece keeps its last id, as the reference's trie keeps
 * the last insertion. Empty pieces are left out.
 */
export function createPieceTrie(vocab: ReadonlyArray<[string, number]>, reservedCount: number): PieceTrie {
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
  const edgeOf = (parent: number, codePoint: number): number => {
    for (let slot = slotOf(parent, codePoint, slotMask); ; slot = (slot + 1) & slotMask) {
      const offset = slot * SLOT_INTS;
      const found = edges[offset];
      if (found === -1) return -1;
      if (found === parent && edges[offset + 1] === codePoint) return offset;
    }
  };
  const rootEdge = new Int32Array(ROOT_TABLE_SIZE);
  for (let codePoint = 0; codePoint < ROOT_TABLE_SIZE; codePoint++) rootEdge[codePoint] = edgeOf(0, codePoint);
  return { edges, depth, bmpOnly, rootEdge, edgeOf };
}
