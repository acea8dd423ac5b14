"""The API design's SDK usage examples, transcribed as written, against the real server.

The examples construct `SutraEmbedder(api_key="your-api-key")` with no base URL: the SDK takes
the server from `SUTRA_BASE_URL`, so they run unchanged. The server authenticates nobody, so the
placeholder key is sent and ignored.
"""

import asyncio

import numpy as np
import pytest

from sutra_embedder import APIError, DimensionsPolicy, EmbeddingConfig, ModelPreset, SutraEmbedder

# The `config` body of an EmbeddingConfig() (the design's defaults; the example's use_fp16=True is one).
DEFAULT_CONFIG = {"quantization": "int8", "use_fp16": True, "batch_size": 32, "hardware_profile": "auto", "binary_quantization": False}
DESIGN_TEXTS = ["Natural language processing", "Machine learning algorithms"]


def test_synchronous_example_768_on_the_512_dimension_default_names_the_native_size(base_url):
    # The example as written: the default model gives 512 values, and the server's default
    # policy (`reduce`) cannot make 768 of them.
    embedder = SutraEmbedder(api_key="your-api-key")
    with pytest.raises(APIError) as refused:
        embedder.embed([
            "Natural language processing",
            "Machine learning algorithms"
        ], dimensions=768)
    assert refused.value.status_code == 400
    assert refused.value.error_code == "INVALID_DIMENSIONS"
    assert "512" in str(refused.value)


def test_synchronous_example_under_pad_answers_768_values(base_url, rest_embeddings):
    embedder = SutraEmbedder(api_key="your-api-key")
    result = embedder.embed(DESIGN_TEXTS, dimensions=768, config=EmbeddingConfig(dimensions_policy=DimensionsPolicy.PAD))
    native = rest_embeddings({"texts": DESIGN_TEXTS, "dimensions": 512, "model": "efficient", "config": DEFAULT_CONFIG})

    assert [len(vector) for vector in result.embeddings] == [768, 768]
    np.testing.assert_allclose(np.array(result.embeddings)[:, :512], native["embeddings"], atol=1e-6)
    assert not np.any(np.array(result.embeddings)[:, 512:])
    assert result.metadata["dimensions_policy"] == "pad"


def test_asynchronous_example_high_quality_512(base_url, rest_embeddings):
    async def example():
        async with SutraEmbedder(api_key="your-api-key") as embedder:
            result = await embedder.embed_async([
                "Text to embed"
            ], config=EmbeddingConfig(
                dimensions=512,
                model=ModelPreset.HIGH_QUALITY,
                use_fp16=True
            ))
        return result

    result = asyncio.run(example())
    reference = rest_embeddings({
        "texts": ["Text to embed"],
        "dimensions": 512,
        "model": "high-quality",
        "config": DEFAULT_CONFIG,
    })

    assert len(result.embeddings) == 1
    assert len(result.embeddings[0]) == 512
    np.testing.assert_allclose(result.embeddings, reference["embeddings"], atol=1e-6)
    assert result.model_info["model_id"] == reference["model_info"]["model_id"]
    assert abs(np.linalg.norm(result.embeddings[0]) - 1) < 1e-4
