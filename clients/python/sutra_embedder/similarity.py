"""Cosine similarity helpers over embeddings (numpy)."""

from typing import List, Sequence, Tuple

import numpy as np


def _normalized_rows(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    """Rows scaled to unit length; a zero row stays zero, so its similarities are 0."""
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError("expected a list of equally long vectors")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two embeddings of the same length (0.0 when either is all zeros)."""
    if len(a) != len(b):
        raise ValueError(f"embeddings differ in length: {len(a)} and {len(b)}")
    rows = _normalized_rows([a, b])
    return float(rows[0] @ rows[1])


def batch_cosine_similarity(
    embeddings_a: Sequence[Sequence[float]],
    embeddings_b: Sequence[Sequence[float]],
) -> List[List[float]]:
    """Pairwise cosine similarities: row i, column j compares `embeddings_a[i]` with `embeddings_b[j]`."""
    return (_normalized_rows(embeddings_a) @ _normalized_rows(embeddings_b).T).tolist()


def find_most_similar(
    query_embedding: Sequence[float],
    candidate_embeddings: Sequence[Sequence[float]],
    top_k: int = 5,
) -> List[Tuple[int, float]]:
    """The `top_k` candidates most similar to the query, as `(index, similarity)`, best first.

    Ties keep the candidates' order.
    """
    if top_k < 1 or not candidate_embeddings:
        return []
    similarities = _normalized_rows(candidate_embeddings) @ _normalized_rows([query_embedding])[0]
    order = np.argsort(-similarities, kind="stable")[:top_k]
    return [(int(index), float(similarities[index])) for index in order]
