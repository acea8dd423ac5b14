"""SutraEmbedder's REST calls against a real server, and its retries against a scripted one."""

import asyncio
import time
from typing import List, Tuple

import numpy as np
import pytest
from aiohttp import web

from sutra_embedder import (
    APIError,
    EmbeddingConfig,
    ModelPreset,
    QuantizationType,
    SutraEmbedder,
)

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Embeddings map text to vectors.",
    "Ünïcödé, emoji 🚀 and 日本語 too",
]


def default_body(texts: List[str], dimensions: int = 384) -> dict:
    """The REST body `embed` sends with the default EmbeddingConfig."""
    return {
        "texts": texts,
        "dimensions": dimensions,
        "model": "efficient",
        "config": {
            "quantization": "int8",
            "use_fp16": True,
            "batch_size": 32,
            "hardware_profile": "auto",
            "binary_quantization": False,
        },
    }


def test_embed_without_an_event_loop_returns_the_rest_vectors(base_url, rest_embeddings):
    embedder = SutraEmbedder(base_url=base_url)
    result = embedder.embed(TEXTS)
    # A second call runs in a new event loop: the lazily created session must follow it.
    again = embedder.embed(TEXTS[:1])
    reference = rest_embeddings(default_body(TEXTS))

    assert len(result.embeddings) == 3
    assert all(len(vector) == 384 for vector in result.embeddings)
    np.testing.assert_allclose(result.embeddings, reference["embeddings"], atol=1e-6)
    np.testing.assert_allclose(again.embeddings[0], reference["embeddings"][0], atol=1e-6)
    assert result.model_info["model_id"] == reference["model_info"]["model_id"]
    assert result.model_info["dimensions"] == 384
    assert result.metadata["dimensions_policy"] == "reduce"
    assert result.performance["latency_ms"] > 0


def test_embed_async_with_a_config_returns_the_rest_vectors(base_url, rest_embeddings):
    config = EmbeddingConfig(dimensions=256, quantization=QuantizationType.NONE, use_fp16=False, batch_size=2)

    async def embed() -> Tuple[list, list]:
        async with SutraEmbedder(base_url=base_url) as embedder:
            configured = await embedder.embed_async(TEXTS, config=config)
            # `dimensions` wins over the config's.
            sized = await embedder.embed_async(TEXTS[:1], dimensions=128, config=config)
        return configured.embeddings, sized.embeddings

    configured, sized = asyncio.run(embed())
    body = {
        "texts": TEXTS,
        "dimensions": 256,
        "model": "efficient",
        "config": {"quantization": "none", "use_fp16": False, "batch_size": 2, "hardware_profile": "auto", "binary_quantization": False},
    }
    reference = rest_embeddings(body)
    assert [len(vector) for vector in configured] == [256, 256, 256]
    np.testing.assert_allclose(configured, reference["embeddings"], atol=1e-6)
    assert len(sized[0]) == 128


def test_embed_async_without_a_context_manager_then_close(base_url, rest_embeddings):
    async def embed() -> list:
        embedder = SutraEmbedder(base_url=base_url)
        try:
            return (await embedder.embed_async(TEXTS[1:2], config=EmbeddingConfig(model=ModelPreset.EFFICIENT))).embeddings
        finally:
            await embedder.close()

    np.testing.assert_allclose(asyncio.run(embed()), rest_embeddings(default_body(TEXTS[1:2]))["embeddings"], atol=1e-6)


def test_embed_checks_its_arguments_before_any_request():
    embedder = SutraEmbedder(base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="empty"):
        embedder.embed([])
    with pytest.raises(ValueError, match="between 64 and 4096"):
        embedder.embed(["text"], dimensions=32)


def test_embed_inside_an_event_loop_points_to_embed_async(base_url):
    async def call_sync() -> None:
        SutraEmbedder(base_url=base_url).embed(TEXTS)

    with pytest.raises(RuntimeError, match="embed_async"):
        asyncio.run(call_sync())


def test_a_refused_request_raises_api_error_from_the_envelope(base_url):
    with pytest.raises(APIError) as refused:
        SutraEmbedder(base_url=base_url).embed(["first", ""])
    assert refused.value.status_code == 400
    assert refused.value.error_code == "EMPTY_INPUT"
    assert refused.value.details == {"index": 1}
    assert refused.value.retry_after is None


def test_get_models_lists_the_served_models(base_url):
    async def calls():
        async with SutraEmbedder(base_url=base_url) as embedder:
            return await embedder.get_models(), await embedder.get_models(dimensions=384), await embedder.health_check()

    models, sized, health = asyncio.run(calls())
    ids = [model["id"] for model in models]
    assert health["default_model"] in ids
    assert "sentence-transformers/all-MiniLM-L6-v2" in ids
    default = next(model for model in models if model["id"] == health["default_model"])
    assert default["status"] == "loaded"
    assert default["dimensions"] > 0
    assert 0 < len(sized) <= len(models)


def test_health_check_reports_a_healthy_server(base_url):
    async def check():
        async with SutraEmbedder(base_url=base_url) as embedder:
            return await embedder.health_check()

    health = asyncio.run(check())
    assert health["status"] == "healthy"
    assert health["checks"]["models_available"] is True
    assert health["uptime_seconds"] > 0


def test_download_model_of_an_id_off_the_allowlist_raises_forbidden(base_url):
    async def download():
        async with SutraEmbedder(base_url=base_url) as embedder:
            await embedder.download_model("other-org/some-model")

    with pytest.raises(APIError) as refused:
        asyncio.run(download())
    # The `/` travelled escaped in one path segment: an unescaped one would be ROUTE_NOT_FOUND (404).
    assert refused.value.status_code == 403
    assert refused.value.error_code == "FORBIDDEN"
    assert "other-org/some-model" in str(refused.value)


class ScriptedServer:
    """A local HTTP server answering `POST /v1/embeddings` from a script of (status, headers)."""

    def __init__(self, script: List[Tuple[int, dict]]) -> None:
        self.script = list(script)
        self.arrivals: List[float] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.arrivals.append(time.monotonic())
        status, headers = self.script.pop(0)
        if status == 200:
            body = {"embeddings": [[1.0, 0.0]], "model_info": {}, "performance": {}, "metadata": {}}
        else:
            body = {"error": {"code": "RATE_LIMITED" if status == 429 else "SHUTTING_DOWN", "message": "try later", "details": {}}}
        return web.json_response(body, status=status, headers=headers)

    async def run(self, attempts: int) -> object:
        app = web.Application()
        app.router.add_post("/v1/embeddings", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with SutraEmbedder(base_url=f"http://127.0.0.1:{port}/v1", retry_attempts=attempts) as embedder:
                return await embedder.embed_async(["text"])
        finally:
            await runner.cleanup()


def test_429_and_503_are_retried_after_their_retry_after():
    server = ScriptedServer([(429, {"Retry-After": "1"}), (503, {"Retry-After": "0"}), (200, {})])
    result = asyncio.run(server.run(attempts=3))
    assert result.embeddings == [[1.0, 0.0]]
    assert len(server.arrivals) == 3
    assert server.arrivals[1] - server.arrivals[0] >= 0.95


def test_the_last_refusal_is_raised_with_its_retry_after():
    server = ScriptedServer([(429, {"Retry-After": "0"}), (429, {"Retry-After": "7"})])
    with pytest.raises(APIError) as refused:
        asyncio.run(server.run(attempts=2))
    assert len(server.arrivals) == 2
    assert refused.value.status_code == 429
    assert refused.value.error_code == "RATE_LIMITED"
    assert refused.value.retry_after == 7
