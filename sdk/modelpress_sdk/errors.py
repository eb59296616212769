"""The exceptions the SDK raises: API refusals, failed jobs and waits that ran out of time."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from modelpress_sdk.jobs import Job


class ModelPressError(Exception):
    """The base of every error the SDK raises on its own account."""


class ApiError(ModelPressError):
    """A non-2xx answer, with the fields of its problem+json body when the server sent one.

    `code` is the server's stable error code (`not_found`, `model_too_large`, ...) or
    `http_<status>` when the body was not a problem; `request_id` is the answer's `X-Request-ID`,
    the id to quote when reporting a problem.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str = "",
        request_id: str | None = None,
        retry_after_s: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.request_id = request_id
        self.retry_after_s = retry_after_s
        self.body = body

    @classmethod
    def from_response(cls, resp: httpx.Response) -> ApiError:
        """Build from a response whose body is already read."""
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        request_id = resp.headers.get("X-Request-ID")
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            detail = body.get("detail")
            # FastAPI's own validation errors send detail as a list of dicts.
            if not isinstance(detail, str):
                detail = str(detail) if detail is not None else ""
            title = str(body.get("title") or "")
            return cls(
                resp.status_code,
                str(body.get("code") or f"http_{resp.status_code}"),
                detail or title or resp.reason_phrase,
                title=title,
                request_id=request_id,
                retry_after_s=retry_after,
                body=body,
            )
        text = resp.text.strip()[:300] or resp.reason_phrase
        return cls(
            resp.status_code,
            f"http_{resp.status_code}",
            text,
            request_id=request_id,
            retry_after_s=retry_after,
        )


class JobFailed(ModelPressError):
    """A job ended `failed` or `canceled`; `code` is its error code (`canceled` when canceled)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.code = job.error.code if job.error else job.status
        self.message = job.error.message if job.error else f"job {job.status}"
        super().__init__(f"job {job.id} {job.status} [{self.code}]: {self.message}")


class WaitTimeout(ModelPressError, TimeoutError):
    """`Job.wait(timeout=...)` ran out of time; the job keeps running on the server."""

    def __init__(self, job: Job, timeout_s: float) -> None:
        self.job = job
        super().__init__(f"job {job.id} still {job.status} after {timeout_s:g} s")


class IntegrityError(ModelPressError):
    """A downloaded file's sha256 differs from the one the server announced."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
