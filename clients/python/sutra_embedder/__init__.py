"""Python SDK of the Sutra Embedder server.

`SutraEmbedder` embeds over REST (sync `embed`, async `embed_async`) and streams over the
WebSocket protocol (`embed_stream`); the similarity helpers compare the vectors it returns.
"""

from .client import DEFAULT_BASE_URL, SutraEmbedder, __version__
from .errors import APIError
from .similarity import batch_cosine_similarity, cosine_similarity, find_most_similar
from .types import DimensionsPolicy, EmbeddingConfig, EmbeddingResult, ModelPreset, QuantizationType, StreamingConfig

__all__ = [
    "APIError",
    "DEFAULT_BASE_URL",
    "DimensionsPolicy",
    "EmbeddingConfig",
    "EmbeddingResult",
    "ModelPreset",
    "QuantizationType",
    "StreamingConfig",
    "SutraEmbedder",
    "__version__",
    "batch_cosine_similarity",
    "cosine_similarity",
    "find_most_similar",
]
