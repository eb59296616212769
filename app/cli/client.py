"""Thin HTTP client for the ModelPress v1 API, used by the CLI."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})


class ApiError(Exception):
    """A non-2xx answer, carrying the problem+json fields when the server sent them."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        title: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.retry_after_s = retry_after_s  # the server's Retry-After, when it sent one

    @classmethod
    def from_response(cls, resp: httpx.Response) -> ApiError:
        """Build from a response that is already read."""
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            detail = body.get("detail")
            # FastAPI's own validation errors send detail as a list of dicts.
            if not isinstance(detail, str):
                detail = str(detail) if detail is not None else ""
            return cls(
                resp.status_code,
                str(body.get("code") or f"http_{resp.status_code}"),
                detail or str(body.get("title") or resp.reason_phrase),
                str(body.get("title") or ""),
                retry_after,
            )
        text = resp.text.strip()[:300] or resp.reason_phrase
        return cls(resp.status_code, f"http_{resp.status_code}", text, "", retry_after)


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
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class CheckedFile(io.FileIO):
    """A file opened for reading that calls `before_read` before each chunk it hands out.

    The upload reads the model through it, so a Ctrl-C noted by the caller can stop the
    upload between two chunks: the server then sees a cut-off body and stores nothing.
    """

    def __init__(self, path: Path, before_read: Callable[[], None]) -> None:
        super().__init__(path, "rb")
        self._before_read = before_read

    def read(self, size: int | None = -1, /) -> bytes:
        self._before_read()
        return super().read(size)


class Client:
    """Calls the API at base_url; one connection pool per instance."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        # Uploads of large models can take long; only the connect phase gets a short limit.
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            follow_redirects=True,
            transport=transport,  # tests pass an httpx.MockTransport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        resp = self._http.request(method, url, **kwargs)
        if resp.is_error:
            raise ApiError.from_response(resp)
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ApiError(resp.status_code, "bad_response", "expected a JSON object")
        return data

    def upload_model(
        self, path: Path, name: str | None = None, before_read: Callable[[], None] = lambda: None
    ) -> dict[str, Any]:
        """POST /v1/models; httpx streams the file from disk in chunks."""
        data = {"name": name} if name else {}
        with CheckedFile(path, before_read) as fh:
            files = {"file": (path.name, fh, "application/octet-stream")}
            return self._json("POST", "/v1/models", files=files, data=data)

    def upload_dataset(self, path: Path) -> dict[str, Any]:
        """POST /v1/datasets (an .npz of named arrays)."""
        with CheckedFile(path, lambda: None) as fh:
            files = {"file": (path.name, fh, "application/octet-stream")}
            return self._json("POST", "/v1/datasets", files=files)

    def delete_model(self, model_id: str) -> None:
        """DELETE /v1/models/{id}."""
        resp = self._http.delete(f"/v1/models/{model_id}")
        if resp.is_error:
            raise ApiError.from_response(resp)

    def preset_names(self) -> list[str]:
        """The names GET /v1/presets lists."""
        items = self._json("GET", "/v1/presets").get("items")
        if not isinstance(items, list):
            raise ApiError(200, "bad_response", "GET /v1/presets answered without items")
        return [str(p.get("name")) for p in items if isinstance(p, dict)]

    def create_job(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/jobs."""
        return self._json("POST", "/v1/jobs", json=payload)

    def get_job(self, job_id: str) -> dict[str, Any]:
        """GET /v1/jobs/{id}."""
        return self._json("GET", f"/v1/jobs/{job_id}")

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """POST /v1/jobs/{id}/cancel."""
        return self._json("POST", f"/v1/jobs/{job_id}/cancel")

    def download_model(self, model_id: str, dest: Path) -> int:
        """Stream the model's bytes to dest (via a .part file); returns the byte count."""
        tmp = dest.with_name(dest.name + ".part")
        written = 0
        with self._http.stream("GET", f"/v1/models/{model_id}/download") as resp:
            if resp.is_error:
                resp.read()
                raise ApiError.from_response(resp)
            try:
                with tmp.open("wb") as fh:
                    for chunk in resp.iter_bytes(1024 * 1024):
                        fh.write(chunk)
                        written += len(chunk)
                os.replace(tmp, dest)  # never leave a half-written file under the real name
            finally:
                tmp.unlink(missing_ok=True)
        return written
