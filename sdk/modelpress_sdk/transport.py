"""One HTTP connection pool to the API: requests with retries, errors as `ApiError`."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from modelpress_sdk.errors import ApiError, IntegrityError
from modelpress_sdk.retry import RetryPolicy

CHUNK_BYTES = 1024 * 1024
# Called before each chunk of an upload is read: (bytes sent so far, total bytes).
Progress = Callable[[int, int], None]


class Transport:
    """Sends requests to base_url, retrying under `policy`, raising `ApiError` on refusals."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: float,
        policy: RetryPolicy,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "modelpress-sdk"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        # Uploads of large models can take long; only the connect phase gets a short limit.
        limits = httpx.Timeout(timeout, connect=min(10.0, timeout))
        self.http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=limits,
            follow_redirects=True,
            transport=transport,
        )
        # Presigned URLs carry their own authorisation: no Bearer token may go with them.
        self.bare = httpx.Client(timeout=limits, follow_redirects=True, transport=transport)

    def close(self) -> None:
        self.http.close()
        self.bare.close()

    def send(
        self,
        method: str,
        url: str,
        *,
        idempotent_create: bool = False,
        policy: RetryPolicy | None = None,
        ok: frozenset[int] = frozenset(),
        per_attempt: Callable[[ExitStack], dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; a creating POST gets one Idempotency-Key for all its attempts.

        `per_attempt` gives request arguments made anew for each attempt (a retried upload
        opens its file again); what it enters on the stack is closed after the attempt.
        Statuses in `ok` are returned, not raised.
        """
        headers = dict(kwargs.pop("headers", None) or {})
        if idempotent_create:
            headers["Idempotency-Key"] = str(uuid.uuid4())

        def attempt() -> httpx.Response:
            with ExitStack() as stack:
                fresh = per_attempt(stack) if per_attempt is not None else {}
                resp = self.http.request(method, url, headers=headers, **kwargs, **fresh)
            if resp.is_error and resp.status_code not in ok:
                raise ApiError.from_response(resp)
            return resp

        return (policy or self.policy).run(attempt)

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """Send and return the decoded JSON body."""
        resp = self.send(method, url, **kwargs)
        try:
            return resp.json()
        except ValueError:
            raise ApiError(
                resp.status_code,
                "bad_response",
                f"{method} {url} answered without JSON",
                request_id=resp.headers.get("X-Request-ID"),
            ) from None

    def download(
        self,
        url: str,
        dest: Path,
        params: dict[str, str] | None = None,
        expected_sha256: Callable[[], str] | None = None,
        verify: bool = True,
    ) -> int:
        """Stream url's body to dest through a `.part` file, checking its sha256 against
        `X-Model-Sha256` (or `expected_sha256()` when a presigned redirect sent none).

        Returns the byte count. A failure leaves neither dest nor the `.part` file behind.
        `verify=False` for a body coded for transport (zstd), whose hash is not the model's.
        """

        def attempt() -> int:
            with self.http.stream("GET", url, params=params) as resp:
                if resp.is_error:
                    resp.read()
                    raise ApiError.from_response(resp)
                expected = resp.headers.get("X-Model-Sha256") if verify else None
                if verify and expected is None and expected_sha256 is not None:
                    expected = expected_sha256()
                return _write_checked(resp.iter_bytes(CHUNK_BYTES), dest, expected)

        return self.policy.run(attempt)

    def put_file(
        self,
        url: str,
        path: Path,
        headers: dict[str, str],
        *,
        offset: int = 0,
        length: int | None = None,
        progress: Progress | None = None,
        sent_before: int = 0,
        total: int | None = None,
    ) -> httpx.Response:
        """PUT a byte range of a file to a presigned URL (no Bearer token), with retries."""
        size = path.stat().st_size - offset if length is None else length
        # A fixed Content-Length: S3's presigned PUTs refuse chunked bodies.
        sent_headers = {**headers, "Content-Length": str(size)}

        def attempt() -> httpx.Response:
            body = file_chunks(path, offset, size, progress, sent_before, total or size)
            resp = self.bare.request("PUT", url, headers=sent_headers, content=body)
            if resp.is_error:
                raise ApiError.from_response(resp)
            return resp

        return self.policy.run(attempt)


def file_chunks(
    path: Path,
    offset: int,
    length: int,
    progress: Progress | None,
    sent_before: int = 0,
    total: int | None = None,
) -> Iterator[bytes]:
    """The bytes [offset, offset + length) of a file in chunks, reporting progress before each."""
    left = length
    with path.open("rb") as fh:
        fh.seek(offset)
        while left > 0:
            if progress is not None:
                progress(sent_before + length - left, total if total is not None else length)
            chunk = fh.read(min(CHUNK_BYTES, left))
            if not chunk:
                raise OSError(f"{path} shrank while it was being uploaded")
            left -= len(chunk)
            yield chunk


class ProgressFile:
    """A file opened for reading that reports progress before each chunk it hands out.

    A multipart form streams the file through it; a progress callback that raises (say on a
    noted Ctrl-C) stops the upload between two chunks, and the server then stores nothing.
    """

    def __init__(self, path: Path, progress: Progress | None) -> None:
        self._fh = path.open("rb")
        self._progress = progress
        self._total = path.stat().st_size

    def read(self, size: int = -1) -> bytes:
        if self._progress is not None:
            self._progress(self._fh.tell(), self._total)
        return self._fh.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> ProgressFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_checked(chunks: Iterator[bytes], dest: Path, expected_sha256: str | None) -> int:
    tmp = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    written = 0
    try:
        with tmp.open("wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                digest.update(chunk)
                written += len(chunk)
        if expected_sha256 and digest.hexdigest() != expected_sha256.lower():
            raise IntegrityError(
                f"downloaded {written} bytes with sha256 {digest.hexdigest()}, "
                f"the server announced {expected_sha256}"
            )
        os.replace(tmp, dest)  # never a half-written file under the real name
    finally:
        tmp.unlink(missing_ok=True)
    return written
