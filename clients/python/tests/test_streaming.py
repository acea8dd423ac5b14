"""SutraEmbedder.embed_stream over the WebSocket protocol."""

import asyncio
from typing import AsyncIterator, List

import numpy as np
import pytest

from sutra_embedder import APIError, StreamingConfig, SutraEmbedder

TEXTS = [f"chunk {index}: streaming text about topic {index % 7}" for index in range(25)]


async def arriving(texts: List[str], pause: float) -> AsyncIterator[str]:
    """Yields the texts one at a time, `pause` seconds apart, as a live source would."""
    for text in texts:
        await asyncio.sleep(pause)
        yield text


async def collect(base_url: str, texts, config: StreamingConfig) -> List[List[float]]:
    async with SutraEmbedder(base_url=base_url) as embedder:
        return [embedding async for embedding in embedder.embed_stream(texts, config)]


def test_a_stream_of_25_chunks_ends_and_matches_the_rest_vectors(base_url, rest_embeddings):
    config = StreamingConfig(dimensions=384, buffer_size=8, max_latency_ms=20)
    streamed = asyncio.run(collect(base_url, arriving(TEXTS, 0.005), config))
    reference = rest_embeddings({"texts": TEXTS, "dimensions": 384, "model": "efficient"})

    # The iterator ends only at stream_end, one embedding per text, in the texts' order.
    assert len(streamed) == len(TEXTS)
    np.testing.assert_allclose(streamed, reference["embeddings"], atol=1e-6)


def test_a_plain_list_streams_too(base_url, rest_embeddings):
    streamed = asyncio.run(collect(base_url, TEXTS[:3], StreamingConfig(dimensions=128)))
    reference = rest_embeddings({"texts": TEXTS[:3], "dimensions": 128, "model": "efficient"})
    np.testing.assert_allclose(streamed, reference["embeddings"], atol=1e-6)


def test_an_empty_chunk_raises_the_servers_error(base_url):
    with pytest.raises(APIError) as refused:
        asyncio.run(collect(base_url, ["first", "", "third"], StreamingConfig()))
    assert refused.value.error_code == "EMPTY_INPUT"
    assert refused.value.details["chunk_id"] == "chunk-1"


def test_a_stream_the_server_refuses_raises_before_any_chunk(base_url):
    with pytest.raises(APIError) as refused:
        asyncio.run(collect(base_url, TEXTS[:2], StreamingConfig(dimensions=384, buffer_size=100000)))
    assert refused.value.error_code == "INVALID_ARGUMENT"


def test_pings_are_answered_so_a_slow_stream_outlives_them(ping_base_url):
    # Pings every 100 ms and a connection closed after two unanswered: a 1.2 s stream sees about
    # twelve pings and ends with stream_end only if the client answered them.
    texts = [f"slow chunk {index}" for index in range(12)]
    streamed = asyncio.run(collect(ping_base_url, arriving(texts, 0.1), StreamingConfig(dimensions=64, buffer_size=1)))
    assert len(streamed) == len(texts)
    assert all(len(vector) == 64 for vector in streamed)


def test_a_source_without_texts_raises_value_error(base_url):
    with pytest.raises(ValueError, match="no texts"):
        asyncio.run(collect(base_url, [], StreamingConfig()))
