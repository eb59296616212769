"""Thin HTTP client for the ModelPress v1 API, used by the CLI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})


class ApiError(Exception):
    """A non-2xx answer, carrying the problem+json fields when the server sent them."""

    def __init__(self, status: int, code: str, detail: str, title: str = "") -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title

    @classmethod
    def from_response(cls, resp: httpx.Response) -> ApiError:
        """Build from a response that is already read."""
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
            )
        text = resp.text.strip()[:300] or resp.reason_phrase
        return cls(resp.status_code, f"http_{resp.status_code}", text)


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

    def upload_model(self, path: Path, name: str | None = None) -> dict[str, Any]:
        """POST /v1/models; httpx streams the file from disk in chunks."""
        data = {"name": name} if name else {}
        with path.open("rb") as fh:
            files = {"file": (path.name, fh, "application/octet-stream")}
            return self._json("POST", "/v1/models", files=files, data=data)

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
