"""The one error type the SDK raises for failed calls."""

from typing import Any, Dict, Optional


class APIError(Exception):
    """A call the server refused, or one that could not reach it.

    Attributes:
        status_code: the HTTP status (None for network failures and WebSocket errors).
        error_code: the reason of the server's error table (docs/ERRORS.md), such as
            `RATE_LIMITED` or `FORBIDDEN`; None when the server gave none.
        retry_after: seconds to wait before a retry may succeed (the `Retry-After` header,
            or a WebSocket error's `retry_after_ms`); None when the server named no wait.
        details: the envelope's structured `details`.
    """

    def __init__(
        self,
        message: str,
        status_code: Optional[int] = None,
        error_code: Optional[str] = None,
        retry_after: Optional[float] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.retry_after = retry_after
        self.details = details or {}
