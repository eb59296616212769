"""A job handle: its fields, and waiting for it, canceling it and fetching what it made."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import PrivateAttr

from modelpress_sdk.errors import JobFailed, ModelPressError, WaitTimeout
from modelpress_sdk.retry import RetryPolicy
from modelpress_sdk.types import JobFields, JobReport, JobStatus, Model

if TYPE_CHECKING:
    from modelpress_sdk.client import Client

LONG_POLL_S = 30  # what GET /v1/jobs/{id}?wait= asks for; the server allows up to 60
MAX_POLL_S = 5.0  # the longest pause between polls of a server that answers at once


class Job(JobFields):
    """A job, bound to the client that fetched it.

    `wait()` long-polls until the job ends and raises `JobFailed` when it failed or was
    canceled (pass `raise_on_failure=False` to get the job back and check `status` yourself).
    """

    _client: Client | None = PrivateAttr(default=None)
    _etag: str | None = PrivateAttr(default=None)

    def bind(self, client: Client, etag: str | None = None) -> Job:
        """Attach the client the methods use (done by every Client method returning a Job)."""
        self._client, self._etag = client, etag
        return self

    @property
    def client(self) -> Client:
        if self._client is None:
            raise ModelPressError("this Job is not bound to a Client (use client.get_job)")
        return self._client

    def refresh(self, *, retry: RetryPolicy | None = None) -> Job:
        """Fetch the job again and update this object in place; returns it."""
        self.client.poll_job(self, wait_s=0, retry=retry)
        return self

    def wait(
        self,
        timeout: float | None = None,
        poll: float = 1.0,
        *,
        raise_on_failure: bool = True,
        on_update: Callable[[Job], None] | None = None,
        retry: RetryPolicy | None = None,
    ) -> Job:
        """Wait until the job ends and return it (this object, updated).

        Each request long-polls (`?wait=30` with `If-None-Match`), so the server answers when
        the status or stage changes; a server that answers at once instead is polled every
        `poll` seconds, more slowly while nothing changes. `on_update` sees every new state.
        Raises `JobFailed` when the job failed or was canceled (unless `raise_on_failure` is
        false) and `WaitTimeout` after `timeout` seconds; busy answers and lost connections are
        retried under `retry` (the client's policy when not given).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._etag is None and not self.done:
            # Long polls compare against an ETag: fetch one (the job may have moved on, too).
            self.refresh(retry=retry)
        if on_update is not None:
            on_update(self)
        interval = poll
        while not self.done:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise WaitTimeout(self, timeout or 0.0)
            wait_s = LONG_POLL_S if deadline is None else max(0, min(LONG_POLL_S, deadline - now))
            changed, retry_after = self.client.poll_job(self, wait_s=int(wait_s), retry=retry)
            elapsed = time.monotonic() - now
            if changed and on_update is not None:
                on_update(self)
            if self.done:
                break
            if changed:
                interval = poll
            elif elapsed < wait_s / 2:
                # Answered at once although nothing changed: the server does not long-poll.
                interval = min(max(poll, MAX_POLL_S), interval * 1.5)
            pause = max(interval - elapsed, retry_after or 0.0)
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(max(0.0, pause))
        if raise_on_failure and self.status in {JobStatus.FAILED, JobStatus.CANCELED}:
            raise JobFailed(self)
        return self

    def cancel(self) -> Job:
        """Cancel the job if it is queued or running; updates this object and returns it."""
        self.client.cancel_job(self.id, into=self)
        return self

    def report(self) -> JobReport:
        """The per-pass report (GET /v1/jobs/{id}/report)."""
        return self.client.get_job_report(self.id)

    def output_model(self) -> Model:
        """The model the job made (an auto job: the recommended candidate's)."""
        model_id = self._output_id()
        return self.client.get_model(model_id)

    def download(self, path: str | Path, zstd: bool = False) -> Path:
        """Write the output model to path (a folder: `<model id>.onnx` in it); returns the file.

        With zstd=True the file is coded for transport (`.onnx.zst`, `zstd -d` restores it);
        otherwise its sha256 is checked against the server's.
        """
        model_id = self._output_id()
        return self.client.download_model(model_id, path, zstd=zstd)

    def _output_id(self) -> str:
        if not self.output_model_id:
            why = self.recommendation_reason or f"status {self.status}"
            raise ModelPressError(f"job {self.id} has no output model ({why})")
        return self.output_model_id
