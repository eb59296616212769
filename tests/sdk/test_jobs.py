"""Job.wait against a real local HTTP server: long polls with ETags, a server that ignores
`wait`, Retry-After on polls, failures, time-outs; and downloads checked by sha256."""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from modelpress_sdk import (
    ApiError,
    Client,
    IntegrityError,
    Job,
    JobFailed,
    ModelPressError,
    WaitTimeout,
)

from tests.cli.stub_api import JOB, Reply, StubApi, stub_api

RUNNING = {**JOB, "status": "running", "progress": 0.5, "stage": "quantize_dynamic"}
DONE = {**JOB, "status": "succeeded", "progress": 1.0, "stage": "done", "output_model_id": "m2"}
FAILED = {**JOB, "status": "failed", "error": {"code": "oom", "message": "out of memory"}}


class LongPollingJob:
    """A job that moves through `states`, answering like the server: an ETag per state, 304
    to an If-None-Match of the current one, and a held answer when the caller asks `wait`."""

    def __init__(self, states: list[dict[str, Any]], hold_s: float) -> None:
        self.states, self.hold_s, self.index = states, hold_s, 0
        self.api: StubApi | None = None
        self.lock = threading.Lock()

    def etag(self) -> str:
        return f'"v{self.index}"'

    def __call__(self, method: str, path: str) -> Reply:
        assert self.api is not None
        sent = self.api.calls[-1].headers.get("If-None-Match")
        with self.lock:
            if sent == self.etag() and "wait=" in path:
                time.sleep(self.hold_s)  # the job moves on while the answer is held
                self.index = min(self.index + 1, len(self.states) - 1)
            if sent == self.etag():
                return Reply(304, headers={"ETag": self.etag()})
            return Reply(200, self.states[self.index], {"ETag": self.etag()})


def test_wait_long_polls_with_the_etag_and_sees_every_state() -> None:
    job_server = LongPollingJob([JOB, RUNNING, DONE], hold_s=0.2)
    seen: list[str] = []
    with stub_api(job_server) as api, Client(api.url) as mp:
        job_server.api = api
        job = mp.get_job("j1")
        started = time.monotonic()
        final = job.wait(poll=1.0, on_update=lambda j: seen.append(j.status))
        took = time.monotonic() - started

    assert final is job and job.status == "succeeded" and job.output_model_id == "m2"
    assert seen == ["queued", "running", "succeeded"]
    polls = api.calls[1:]
    assert all("wait=30" in call.path for call in polls)
    assert [call.headers.get("If-None-Match") for call in polls] == ['"v0"', '"v1"']
    assert took < 2.5  # one held poll per change, each at most `poll` after the one before


def test_wait_works_with_a_server_that_ignores_wait_and_etags() -> None:
    answers = iter([JOB, RUNNING, RUNNING, RUNNING, RUNNING])
    with (
        stub_api(lambda method, path: Reply(200, next(answers, DONE))) as api,
        Client(api.url) as mp,
    ):
        job = mp.get_job("j1")
        job.wait(poll=0.1)

    starts = len(api.calls)
    assert job.status == "succeeded" and starts == 6


def test_unchanged_answers_slow_the_polling_down() -> None:
    answers = iter([JOB] * 6)
    stamps: list[float] = []

    def script(method: str, path: str) -> Reply:
        stamps.append(time.monotonic())
        return Reply(200, next(answers, DONE))

    with stub_api(script) as api, Client(api.url) as mp:
        mp.get_job("j1").wait(poll=0.1)

    gaps = [b - a for a, b in itertools.pairwise(stamps[1:])]
    assert len(api.calls) == 7 and gaps[-1] > gaps[0] * 2


def test_retry_after_on_a_poll_answer_is_honoured() -> None:
    # The first two fetch the job, the third is the first poll of wait().
    answers = iter([Reply(200, JOB), Reply(200, JOB), Reply(200, RUNNING, {"Retry-After": "1"})])
    with (
        stub_api(lambda method, path: next(answers, Reply(200, DONE))) as api,
        Client(api.url) as mp,
    ):
        job = mp.get_job("j1")
        started = time.monotonic()
        job.wait(poll=0.05)

    assert time.monotonic() - started >= 1.0 and len(api.calls) == 4


def test_a_failed_job_raises_job_failed_with_its_code_unless_told_not_to() -> None:
    with stub_api(lambda method, path: Reply(200, FAILED)) as api, Client(api.url) as mp:
        job = mp.get_job("j1")
        with pytest.raises(JobFailed) as raised:
            job.wait(poll=0.05)
        returned = job.wait(raise_on_failure=False)

    assert raised.value.code == "oom" and raised.value.job.status == "failed"
    assert "out of memory" in str(raised.value)
    assert returned.status == "failed" and returned.error is not None


def test_wait_gives_up_after_its_timeout_and_the_job_is_left_running() -> None:
    with stub_api(lambda method, path: Reply(200, RUNNING)) as api, Client(api.url) as mp:
        job = mp.get_job("j1")
        started = time.monotonic()
        with pytest.raises(WaitTimeout) as raised:
            job.wait(timeout=0.5, poll=0.1)

    assert time.monotonic() - started < 3
    assert raised.value.job.status == "running" and isinstance(raised.value, TimeoutError)
    assert not any("cancel" in call.path for call in api.calls)


def test_cancel_updates_the_job_in_place() -> None:
    canceled = {**RUNNING, "status": "canceled"}
    with (
        stub_api(lambda method, path: Reply(200, canceled if "cancel" in path else RUNNING)) as api,
        Client(api.url) as mp,
    ):
        job = mp.get_job("j1")
        assert job.cancel() is job

    assert job.status == "canceled" and api.calls[-1].method == "POST"


def _serve_download(content: bytes, sha256: str) -> Any:
    def script(method: str, path: str) -> Reply:
        if path.startswith("/v1/models/m2/download"):
            return Reply(200, content, {"X-Model-Sha256": sha256})
        if path == "/v1/jobs/j1":
            return Reply(200, DONE)
        return Reply(404, {"code": "not_found", "detail": path})

    return script


def test_download_writes_the_file_and_checks_its_sha256(tmp_path: Path) -> None:
    content = b"onnx-bytes" * 100
    sha256 = hashlib.sha256(content).hexdigest()
    with stub_api(_serve_download(content, sha256)) as api, Client(api.url) as mp:
        written = mp.get_job("j1").download(tmp_path / "out.onnx")
        in_folder = mp.download_model("m2", tmp_path)

    assert written.read_bytes() == content and in_folder == tmp_path / "m2.onnx"


def test_a_download_with_the_wrong_sha256_leaves_nothing(tmp_path: Path) -> None:
    with stub_api(_serve_download(b"tampered", "0" * 64)) as api, Client(api.url) as mp:
        with pytest.raises(IntegrityError):
            mp.download_model("m2", tmp_path / "out.onnx")
        with pytest.raises(ApiError) as raised:
            mp.download_model("zzz", tmp_path / "other.onnx")

    assert raised.value.code == "not_found"
    assert list(tmp_path.iterdir()) == []


def test_a_job_without_output_or_client_says_so(tmp_path: Path) -> None:
    job = Job.model_validate(FAILED)

    with pytest.raises(ModelPressError, match="has no output model"):
        job.download(tmp_path / "out.onnx")
    with pytest.raises(ModelPressError, match="not bound to a Client"):
        job.refresh()
