"""When and how long to retry: busy answers and lost connections, with backoff and jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from modelpress_sdk.errors import ApiError

# Answers that mean "not now" rather than "no": rate limit, overload, a proxy without a backend.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# A retry that arrives while the first request with its Idempotency-Key still runs is told so.
RETRYABLE_CODES = frozenset({"idempotency_key_in_use"})

T = TypeVar("T")


@dataclass(frozen=True)
class RetryEvent:
    """One failed attempt about to be retried, as `RetryPolicy.on_retry` sees it."""

    attempt: int  # 1 for the first retry
    delay_s: float
    error: Exception

    @property
    def reason(self) -> str:
        """`HTTP 503 broker_unavailable`, or the connection error's type and text."""
        if isinstance(self.error, ApiError):
            return f"HTTP {self.error.status} {self.error.code}"
        return f"{type(self.error).__name__} {self.error}".strip()


@dataclass(frozen=True)
class RetryPolicy:
    """How a request is retried after a 429, 502, 503, 504, `idempotency_key_in_use` or a
    connection error or timeout: up to `max_retries` times, waiting `backoff_s` doubled each
    time (at most `max_backoff_s`) with jitter, or what the server's `Retry-After` asks (at most
    `max_retry_after_s`). With `retry_for_s`, retrying also stops that long after the first
    failure. Any other error is raised at once."""

    max_retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 60.0
    retry_for_s: float | None = None
    on_retry: Callable[[RetryEvent], None] | None = None

    def is_retryable(self, error: Exception) -> bool:
        """Whether this error may go away by itself."""
        if isinstance(error, ApiError):
            return error.status in RETRYABLE_STATUSES or error.code in RETRYABLE_CODES
        return isinstance(error, httpx.TransportError)

    def backoff(self, retry: int) -> float:
        """The pause before retry number `retry` (1-based) when the server asked for none."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (retry - 1))
        # Jitter keeps many clients that failed together from coming back together.
        return random.uniform(ceiling / 2, ceiling)

    def run(self, attempt: Callable[[], T]) -> T:
        """Call `attempt` until it returns, retrying what may go away by itself."""
        retries = 0
        deadline: float | None = None
        while True:
            try:
                return attempt()
            except (ApiError, httpx.TransportError) as exc:
                if not self.is_retryable(exc) or retries >= self.max_retries:
                    raise
                now = time.monotonic()
                if deadline is None and self.retry_for_s is not None:
                    deadline = now + self.retry_for_s
                if deadline is not None and now >= deadline:
                    raise
                retries += 1
                asked = exc.retry_after_s if isinstance(exc, ApiError) else None
                pause = self.backoff(retries) if asked is None else asked
                pause = min(pause, self.max_retry_after_s)
                if deadline is not None:
                    pause = max(0.1, min(pause, deadline - now))
                if self.on_retry is not None:
                    self.on_retry(RetryEvent(retries, pause, exc))
                time.sleep(pause)
