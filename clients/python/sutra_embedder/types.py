"""The presets, enums and dataclasses of the Sutra Embedder API."""

from dataclasses import dataclass
from enum import Enum
from typing import Any, Dict, List, Optional


class ModelPreset(Enum):
    """Model presets the server resolves to one of its models and precisions."""

    EFFICIENT = "efficient"
    HIGH_QUALITY = "high-quality"
    ULTRA_EFFICIENT = "ultra-efficient"
    CUSTOM = "custom"


class QuantizationType(Enum):
    """Precision of the model run for a request."""

    NONE = "none"
    INT8 = "int8"
    INT4 = "int4"
    BINARY = "binary"


class DimensionsPolicy(Enum):
    """How the server answers a `dimensions` its model does not produce natively.

    `REDUCE` keeps the first values and renormalises (smaller sizes only), `PAD` appends zeros
    (larger sizes), `IGNORE` answers the native size, `REJECT` refuses with INVALID_DIMENSIONS.
    """

    REDUCE = "reduce"
    PAD = "pad"
    IGNORE = "ignore"
    REJECT = "reject"


@dataclass
class EmbeddingConfig:
    """Settings of one embedding request (the REST body's `dimensions`, `model` and `config`)."""

    dimensions: int = 384
    model: ModelPreset = ModelPreset.EFFICIENT
    quantization: QuantizationType = QuantizationType.INT8
    use_fp16: bool = True
    batch_size: int = 32
    hardware_profile: str = "auto"
    binary_quantization: bool = False
    dimensions_policy: Optional[DimensionsPolicy] = None
    """None: the server's policy (`reduce` unless its operator set another)."""


@dataclass
class EmbeddingResult:
    """The answer of `POST /v1/embeddings`.

    `embeddings` holds one float list per text in request order (for `ultra-efficient` or
    binary quantization, the packed bits the server answers instead: see docs/REST.md).
    """

    embeddings: List[List[float]]
    model_info: Dict[str, Any]
    performance: Dict[str, float]
    metadata: Dict[str, Any]


@dataclass
class StreamingConfig:
    """Settings of a WebSocket stream (the `stream_embed` request's `config`)."""

    dimensions: int = 384
    buffer_size: int = 100
    max_latency_ms: int = 100
    model: ModelPreset = ModelPreset.EFFICIENT
