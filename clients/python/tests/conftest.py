"""Fixtures: the servers the tests run against, named by the environment.

`SUTRA_BASE_URL` is a real Sutra Embedder (test/e2e/python-sdk.test.ts starts one with
`SUTRA_MODEL_ALLOWLIST=sentence-transformers/*`); `SUTRA_PING_BASE_URL` a server that pings
WebSocket clients every 100 ms. A test whose server is not named is skipped.
"""

import json
import os
import urllib.request
from typing import Any, Callable, Dict

import pytest


def _base_url(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"set {variable} to a running server's API root (e.g. http://127.0.0.1:8080/v1)")
    return value.rstrip("/")


@pytest.fixture
def base_url() -> str:
    """The API root of the real server."""
    return _base_url("SUTRA_BASE_URL")


@pytest.fixture
def ping_base_url() -> str:
    """The API root of a server that pings every 100 ms."""
    return _base_url("SUTRA_PING_BASE_URL")


@pytest.fixture
def rest_embeddings(base_url: str) -> Callable[[Dict[str, Any]], Dict[str, Any]]:
    """Posts a body to `POST /embeddings` with the standard library alone: the reference answers."""

    def post(body: Dict[str, Any]) -> Dict[str, Any]:
        request = urllib.request.Request(
            f"{base_url}/embeddings",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    return post
