"""The Sutra Embedder client: REST calls with retries and WebSocket streaming."""

import asyncio
import itertools
import os
import uuid
from datetime import datetime, timezone
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Collection,
    Dict,
    Iterable,
    List,
    Optional,
    TypeVar,
    Union,
)
from urllib.parse import quote

import aiohttp
from yarl import URL

from .errors import APIError
from .types import EmbeddingConfig, EmbeddingResult, StreamingConfig

__version__ = "0.1.0"

DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"
# Statuses worth retrying as is: the server is rate limiting, overloaded or briefly unavailable.
RETRYABLE_STATUSES = frozenset({429, 503})

T = TypeVar("T")


class SutraEmbedder:
    """Client of a Sutra Embedder server.

    The HTTP session is created on first use, so the synchronous `embed` works without
    `async with`; in async code, use the client as an async context manager (or call
    `close()`) so its session is closed.

    Example:
        embedder = SutraEmbedder()
        result = embedder.embed(["Natural language processing", "Machine learning"])

        async with SutraEmbedder() as embedder:
            result = await embedder.embed_async(["Text to embed"], config=EmbeddingConfig(dimensions=256))
            async for embedding in embedder.embed_stream(["first chunk", "second chunk"]):
                ...
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        timeout: float = 30,
        retry_attempts: int = 3,
    ) -> None:
        """
        Args:
            api_key: API key or JWT sent as `Authorization: Bearer`; default the environment's
                `SUTRA_API_KEY`, none when unset (a server without authentication).
            base_url: the API root; default the environment's `SUTRA_BASE_URL`, else
                `http://127.0.0.1:8080/v1`.
            timeout: seconds one HTTP request may take in all.
            retry_attempts: attempts per call in all (at least 1): 429 and 503 answers are
                retried after their `Retry-After`, network failures after a backoff.
        """
        if retry_attempts < 1:
            raise ValueError("retry_attempts must be at least 1")
        self.api_key = api_key if api_key is not None else os.environ.get("SUTRA_API_KEY")
        self.base_url = (base_url or os.environ.get("SUTRA_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.retry_attempts = retry_attempts
        self._session: Optional[aiohttp.ClientSession] = None
        self._session_loop: Optional[asyncio.AbstractEventLoop] = None
        self._message_ids = itertools.count(1)

    async def __aenter__(self) -> "SutraEmbedder":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the HTTP session, if one is open; a later call opens a new one."""
        session, self._session, self._session_loop = self._session, None, None
        if session is not None and not session.closed:
            await session.close()

    def embed(
        self,
        texts: List[str],
        dimensions: Optional[int] = None,
        config: Optional[EmbeddingConfig] = None,
    ) -> EmbeddingResult:
        """Embeds `texts` and waits for the answer: `embed_async` for code without an event loop.

        Raises:
            RuntimeError: when called inside a running event loop (await `embed_async` there).
        """
        return self._run_sync(self.embed_async(texts, dimensions, config))

    async def embed_async(
        self,
        texts: List[str],
        dimensions: Optional[int] = None,
        config: Optional[EmbeddingConfig] = None,
    ) -> EmbeddingResult:
        """Embeds `texts` with `POST /embeddings`.

        Args:
            texts: the texts, answered in the same order.
            dimensions: the size of each vector (64-4096); default `config.dimensions` (384).
                The server sizes vectors by `config.dimensions_policy`, else its own (docs/REST.md).
            config: the model preset and precision settings; default `EmbeddingConfig()`.

        Raises:
            ValueError: no texts, or dimensions out of range.
            APIError: the server refused the request, or could not be reached.
        """
        config = config or EmbeddingConfig()
        size = config.dimensions if dimensions is None else dimensions
        if not texts:
            raise ValueError("texts cannot be empty")
        if not 64 <= size <= 4096:
            raise ValueError("dimensions must be between 64 and 4096")
        body = {
            "texts": list(texts),
            "dimensions": size,
            "model": config.model.value,
            "config": {
                "quantization": config.quantization.value,
                "use_fp16": config.use_fp16,
                "batch_size": config.batch_size,
                "hardware_profile": config.hardware_profile,
                "binary_quantization": config.binary_quantization,
            },
        }
        if config.dimensions_policy is not None:
            body["dimensions_policy"] = config.dimensions_policy.value
        data = await self._request("POST", "/embeddings", json=body)
        return EmbeddingResult(
            embeddings=data["embeddings"],
            model_info=data["model_info"],
            performance=data["performance"],
            metadata=data["metadata"],
        )

    async def get_models(
        self,
        dimensions: Optional[int] = None,
        hardware_profile: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        """The server's models (`GET /models`), optionally only those giving `dimensions` or
        suited to `hardware_profile`."""
        params: Dict[str, str] = {}
        if dimensions is not None:
            params["dimensions"] = str(dimensions)
        if hardware_profile is not None:
            params["hardware_profile"] = hardware_profile
        data = await self._request("GET", "/models", params=params)
        return data["models"]

    async def download_model(self, model_id: str) -> Dict[str, Any]:
        """Starts or polls the hub download of `model_id` (`POST /models/{model_id}/download`).

        Ids such as `sentence-transformers/all-MiniLM-L6-v2` are escaped into one path segment.
        Returns the download's status (`status`, `progress`, `bytes_downloaded`, ...); call again
        to poll. An id the server's allowlist refuses raises APIError `FORBIDDEN`.
        """
        return await self._request("POST", f"/models/{quote(model_id, safe='')}/download", json={})

    async def health_check(self) -> Dict[str, Any]:
        """The server's health (`GET /health`); an unhealthy server's answer (503) is returned too."""
        return await self._request("GET", "/health", answered_statuses=(200, 503))

    async def embed_stream(
        self,
        text_stream: Union[AsyncIterable[str], Iterable[str]],
        config: Optional[StreamingConfig] = None,
    ) -> AsyncIterator[List[float]]:
        """Embeds a stream of texts over the WebSocket protocol (`/embeddings/ws`, docs/STREAMING.md).

        Texts are sent as they come, each once the next one (or the end of `text_stream`) is
        known, so that the last is marked final; the server's pings are answered meanwhile.
        Embeddings are yielded in the order of the texts, and the iterator ends at the server's
        `stream_end`.

        Raises:
            ValueError: `text_stream` yielded no texts.
            APIError: the server refused the stream or a chunk (its `error_code`), or the
                connection ended before `stream_end`.
        """
        config = config or StreamingConfig()
        # A session of its own: the server takes a WebSocket upgrade only as the first request
        # of a connection, so a pooled keep-alive connection cannot carry it.
        # `timeout` bounds the connection's opening; the stream itself lasts as long as its texts.
        websocket_timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)
        async with aiohttp.ClientSession(headers=self._default_headers(), timeout=websocket_timeout) as session, \
                session.ws_connect(self._websocket_url()) as ws:
            session_id = f"py-{uuid.uuid4()}"
            await self._ws_call(ws, "handshake", {
                "session_id": session_id,
                "protocol_version": "1.0",
                "client_capabilities": ["stream_embed"],
            })
            await self._ws_call(ws, "stream_embed", {
                "config": {
                    "dimensions": config.dimensions,
                    "buffer_size": config.buffer_size,
                    "max_latency_ms": config.max_latency_ms,
                    "model": config.model.value,
                },
                "metadata": {"session_id": session_id},
            })
            sender = asyncio.ensure_future(self._send_chunks(ws, text_stream))
            try:
                answered: Dict[int, List[float]] = {}
                next_position = 0
                while True:
                    payload = await self._next_response(ws, sender)
                    if payload.get("action") == "stream_end":
                        break
                    answered[payload["metadata"]["sequence_position"]] = payload["embedding"]
                    while next_position in answered:
                        yield answered.pop(next_position)
                        next_position += 1
                await sender
            finally:
                sender.cancel()

    async def _send_chunks(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        text_stream: Union[AsyncIterable[str], Iterable[str]],
    ) -> None:
        """Sends each text as an `add_chunk`, holding one back so the last goes out with `is_final`."""
        held: Optional[str] = None
        position = 0
        async for text in _aiter(text_stream):
            if held is not None:
                await self._send_chunk(ws, held, position, is_final=False)
                position += 1
            held = text
        if held is None:
            raise ValueError("text_stream yielded no texts")
        await self._send_chunk(ws, held, position, is_final=True)

    async def _send_chunk(self, ws: aiohttp.ClientWebSocketResponse, text: str, position: int, is_final: bool) -> None:
        await ws.send_json(self._envelope("request", {
            "action": "add_chunk",
            "chunk_id": f"chunk-{position}",
            "text": text,
            "is_final": is_final,
            "position": position,
        }))

    async def _ws_call(self, ws: aiohttp.ClientWebSocketResponse, action: str, payload: Dict[str, Any]) -> Dict[str, Any]:
        """Sends one request and returns its response's payload (pings answered while waiting)."""
        await ws.send_json(self._envelope("request", {"action": action, **payload}))
        return await self._next_response(ws, None)

    async def _next_response(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        sender: Optional["asyncio.Future[None]"],
    ) -> Dict[str, Any]:
        """The payload of the next `response`, answering `ping`s before it; raises on an `error`
        message, on the connection's end and on a failure of `sender`."""
        while True:
            message = await _receive_unless_failed(ws, sender)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise APIError(f"the WebSocket connection ended before the stream did ({message.type.name}, {message.data!r})")
            envelope = message.json()
            kind = envelope.get("type")
            payload = envelope.get("payload") or {}
            if kind == "response":
                return payload
            if kind == "ping":
                await ws.send_json(self._envelope("pong", {"ping_id": envelope.get("id")}))
            elif kind == "error":
                retry_after_ms = payload.get("retry_after_ms") or 0
                raise APIError(
                    payload.get("error_message", "the stream failed"),
                    error_code=payload.get("error_code"),
                    retry_after=retry_after_ms / 1000 if retry_after_ms else None,
                    details=payload.get("details"),
                )

    def _envelope(self, kind: str, payload: Dict[str, Any]) -> Dict[str, Any]:
        return {
            "id": f"msg-{next(self._message_ids)}",
            "type": kind,
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "payload": payload,
        }

    def _websocket_url(self) -> str:
        url = URL(self.base_url)
        return str(url.with_scheme("wss" if url.scheme == "https" else "ws") / "embeddings" / "ws")

    def _default_headers(self) -> Dict[str, str]:
        headers = {"User-Agent": f"sutra-embedder-python-sdk/{__version__}"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    async def _get_session(self) -> aiohttp.ClientSession:
        """The session of the running event loop, created on first use (a session belongs to one loop)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers=self._default_headers(),
            )
            self._session_loop = loop
        return self._session

    def _run_sync(self, call: Awaitable[T]) -> T:
        """Runs `call` in an event loop of its own and closes the session it opened."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if asyncio.iscoroutine(call):
                call.close()
            raise RuntimeError("SutraEmbedder.embed cannot run inside an event loop: await embed_async instead")

        async def run_and_close() -> T:
            try:
                return await call
            finally:
                await self.close()

        return asyncio.run(run_and_close())

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Optional[Dict[str, Any]] = None,
        params: Optional[Dict[str, str]] = None,
        answered_statuses: Collection[int] = (200,),
    ) -> Any:
        """Sends a request and returns its JSON body, retrying 429 and 503 answers and network
        failures up to `retry_attempts` attempts in all."""
        session = await self._get_session()
        url = URL(self.base_url + path, encoded=True)
        for attempt in range(1, self.retry_attempts + 1):
            backoff = 0.5 * 2 ** (attempt - 1)
            try:
                async with session.request(method, url, json=json, params=params) as response:
                    body = await _json_or_none(response)
                    if response.status in answered_statuses and body is not None:
                        return body
                    error = _error_from_answer(response, body)
            except (aiohttp.ClientError, asyncio.TimeoutError) as failure:
                error = APIError(f"{method} {path} failed: {failure or type(failure).__name__}")
                error.__cause__ = failure
                wait = backoff
            else:
                if error.status_code not in RETRYABLE_STATUSES:
                    raise error
                wait = error.retry_after if error.retry_after is not None else backoff
            if attempt == self.retry_attempts:
                raise error
            await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")


async def _aiter(texts: Union[AsyncIterable[str], Iterable[str]]) -> AsyncIterator[str]:
    """Iterates a sync or async iterable asynchronously."""
    if isinstance(texts, AsyncIterable):
        async for text in texts:
            yield text
    else:
        for text in texts:
            yield text


async def _receive_unless_failed(
    ws: aiohttp.ClientWebSocketResponse,
    sender: Optional["asyncio.Future[None]"],
) -> aiohttp.WSMessage:
    """The next WebSocket message, or the sender's exception should it fail first."""
    receive = asyncio.ensure_future(ws.receive())
    waiting = {receive} if sender is None or sender.done() else {receive, sender}
    try:
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if sender is not None and sender in done and sender.exception() is not None:
            raise sender.exception()  # type: ignore[misc]
        return await receive
    finally:
        if not receive.done():
            receive.cancel()


async def _json_or_none(response: aiohttp.ClientResponse) -> Optional[Any]:
    """The answer's JSON body, or None when it has none (a proxy's HTML page, an empty body)."""
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


def _error_from_answer(response: aiohttp.ClientResponse, body: Optional[Any]) -> APIError:
    """An APIError from an answer with the REST error envelope `{"error": {code, message, details}}`."""
    envelope = body.get("error") if isinstance(body, dict) else None
    envelope = envelope if isinstance(envelope, dict) else {}
    message = envelope.get("message") or f"HTTP {response.status} {response.reason or ''}".strip()
    return APIError(
        f"API request failed: {message}",
        status_code=response.status,
        error_code=envelope.get("code"),
        retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
        details=envelope.get("details"),
    )


def _retry_after_seconds(header: Optional[str]) -> Optional[float]:
    """The `Retry-After` header's wait in seconds (the server sends whole seconds)."""
    try:
        return max(0.0, float(header)) if header is not None else None
    except ValueError:
        return None
