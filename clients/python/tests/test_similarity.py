"""The cosine similarity helpers."""

import math

import pytest

from sutra_embedder import batch_cosine_similarity, cosine_similarity, find_most_similar


def test_cosine_similarity_of_known_vectors():
    assert cosine_similarity([1, 0], [1, 0]) == pytest.approx(1.0)
    assert cosine_similarity([1, 0], [0, 2]) == pytest.approx(0.0)
    assert cosine_similarity([1, 1], [-2, -2]) == pytest.approx(-1.0)
    assert cosine_similarity([3, 4], [4, 3]) == pytest.approx(24 / 25)
    assert cosine_similarity([0, 0], [1, 1]) == 0.0
    assert isinstance(cosine_similarity([1, 2], [2, 1]), float)
    with pytest.raises(ValueError, match="length"):
        cosine_similarity([1, 2], [1, 2, 3])


def test_batch_cosine_similarity_is_the_pairwise_matrix():
    a = [[1, 0], [0, 1], [1, 1]]
    b = [[1, 0], [-1, 1]]
    matrix = batch_cosine_similarity(a, b)
    assert len(matrix) == 3 and all(len(row) == 2 for row in matrix)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            assert value == pytest.approx(cosine_similarity(a[i], b[j]))
    assert matrix[2][0] == pytest.approx(1 / math.sqrt(2))


def test_find_most_similar_ranks_the_candidates():
    candidates = [[0, 1], [1, 0.1], [-1, 0], [1, 0], [0.7, 0.7]]
    top = find_most_similar([1, 0], candidates, top_k=3)
    assert [index for index, _ in top] == [3, 1, 4]
    assert top[0][1] == pytest.approx(1.0)
    assert all(isinstance(index, int) and isinstance(score, float) for index, score in top)
    assert len(find_most_similar([1, 0], candidates)) == 5
    assert find_most_similar([1, 0], []) == []
