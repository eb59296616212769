"""Retries against a real local HTTP server: busy answers, Retry-After, lost connections,
bounds, and one Idempotency-Key per call reused by its retries."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from modelpress_sdk import ApiError, Client, RetryEvent, RetryPolicy, parse_retry_after

from tests.cli.stub_api import JOB, MODEL, Reply, stub_api

QUICK = RetryPolicy(max_retries=3, backoff_s=0.05)
BUSY = Reply(503, {"code": "broker_unavailable", "detail": "busy"}, {"X-Request-ID": "r-503"})


def replies(*first: Reply, then: Reply) -> Iterator[Reply]:
    yield from first
    while True:
        yield then


def test_busy_answers_are_retried_after_what_retry_after_asks() -> None:
    answers = replies(
        Reply(503, {"code": "broker_unavailable", "detail": "busy"}, {"Retry-After": "1"}),
        Reply(429, {"code": "rate_limited", "detail": "slow down"}, {"Retry-After": "1"}),
        then=Reply(202, JOB),
    )
    with stub_api(lambda method, path: next(answers)) as api, Client(api.url, retry=QUICK) as mp:
        started = time.monotonic()
        job = mp.compress("m1", preset="int8-dynamic")
        took = time.monotonic() - started

    assert job.id == "j1" and job.status == "queued"
    assert [(c.method, c.path) for c in api.calls] == [("POST", "/v1/jobs")] * 3
    assert took >= 2.0


def test_one_idempotency_key_per_call_reused_by_its_retries() -> None:
    answers = replies(BUSY, then=Reply(202, JOB))
    with stub_api(lambda method, path: next(answers)) as api, Client(api.url, retry=QUICK) as mp:
        mp.compress("m1", preset="int8-dynamic")
        mp.compress("m1", preset="int8-dynamic")

    keys = [call.headers["Idempotency-Key"] for call in api.calls]
    assert len(keys) == 3 and keys[0] == keys[1] != keys[2]
    assert all(uuid.UUID(key).version == 4 for key in keys)


def test_a_retried_upload_sends_the_whole_file_again_under_the_same_key(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model-bytes-" * 1000)
    answers = replies(BUSY, then=Reply(201, MODEL))
    with stub_api(lambda method, path: next(answers)) as api, Client(api.url, retry=QUICK) as mp:
        uploaded = mp.upload_model(model, name="mine")

    first, second = api.calls
    assert uploaded.id == "m1" and (first.path, second.path) == ("/v1/models", "/v1/models")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert model.read_bytes() in first.body and model.read_bytes() in second.body
    assert b'name="name"\r\n\r\nmine\r\n' in second.body


def test_a_dropped_connection_is_retried_and_said_to_on_retry() -> None:
    seen: list[RetryEvent] = []
    policy = RetryPolicy(max_retries=2, backoff_s=0.05, on_retry=seen.append)
    answers = replies(Reply(drop=True), then=Reply(200, JOB))
    with stub_api(lambda method, path: next(answers)) as api, Client(api.url, retry=policy) as mp:
        job = mp.get_job("j1")

    assert job.id == "j1" and len(api.calls) == 2
    assert len(seen) == 1 and seen[0].attempt == 1 and 0.025 <= seen[0].delay_s <= 0.05
    assert isinstance(seen[0].error, httpx.TransportError)


def test_retries_are_bounded_and_the_last_error_is_raised() -> None:
    with (
        stub_api(lambda method, path: BUSY) as api,
        Client(api.url, retry=QUICK) as mp,
        pytest.raises(ApiError) as raised,
    ):
        mp.get_job("j1")

    assert len(api.calls) == 1 + QUICK.max_retries
    err = raised.value
    assert (err.status, err.code, err.detail, err.request_id) == (
        503, "broker_unavailable", "busy", "r-503",
    )  # fmt: skip


def test_retry_for_bounds_the_time_spent_retrying() -> None:
    policy = RetryPolicy(max_retries=1000, backoff_s=0.2, retry_for_s=1.0)
    with stub_api(lambda method, path: BUSY) as api, Client(api.url, retry=policy) as mp:
        started = time.monotonic()
        with pytest.raises(ApiError):
            mp.get_job("j1")
        took = time.monotonic() - started

    assert 1.0 <= took < 3.0 and 3 <= len(api.calls) < 20


def test_a_long_retry_after_is_capped() -> None:
    answers = replies(
        Reply(429, {"code": "rate_limited"}, {"Retry-After": "3600"}), then=Reply(200, JOB)
    )
    policy = RetryPolicy(max_retries=1, max_retry_after_s=0.2)
    with stub_api(lambda method, path: next(answers)) as api, Client(api.url, retry=policy) as mp:
        started = time.monotonic()
        mp.get_job("j1")

    assert time.monotonic() - started < 2 and len(api.calls) == 2


def test_a_refusal_is_raised_at_once_with_its_problem_fields() -> None:
    problem = {
        "type": "about:blank", "title": "Unprocessable Content", "status": 422,
        "detail": "give exactly one of 'preset' or 'recipe'", "code": "invalid_request",
    }  # fmt: skip
    refusal = Reply(
        422, problem, {"Content-Type": "application/problem+json", "X-Request-ID": "abc"}
    )
    with (
        stub_api(lambda method, path: refusal) as api,
        Client(api.url, retry=QUICK) as mp,
        pytest.raises(ApiError) as raised,
    ):
        mp.compress("m1", preset="nope")

    err = raised.value
    assert len(api.calls) == 1
    assert (err.status, err.code, err.title, err.request_id) == (
        422, "invalid_request", "Unprocessable Content", "abc",
    )  # fmt: skip
    assert err.detail == problem["detail"] and err.body == problem


def test_a_non_json_error_keeps_its_text() -> None:
    with (
        stub_api(lambda method, path: Reply(404, b"no such thing")) as api,
        Client(api.url) as mp,
        pytest.raises(ApiError) as raised,
    ):
        mp.get_model("zzz")

    assert len(api.calls) == 1
    assert (raised.value.code, raised.value.detail) == ("http_404", "no such thing")


def test_an_unreachable_server_is_retried_then_raised() -> None:
    seen: list[RetryEvent] = []
    policy = RetryPolicy(max_retries=2, backoff_s=0.05, on_retry=seen.append)
    with Client("http://127.0.0.1:9", retry=policy) as mp, pytest.raises(httpx.ConnectError):
        mp.get_job("j1")

    assert [event.attempt for event in seen] == [1, 2]


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    policy = RetryPolicy(backoff_s=1.0, max_backoff_s=4.0)

    samples = {retry: [policy.backoff(retry) for _ in range(200)] for retry in (1, 2, 3, 6)}

    assert all(0.5 <= s <= 1.0 for s in samples[1]) and all(1.0 <= s <= 2.0 for s in samples[2])
    assert all(2.0 <= s <= 4.0 for s in samples[3]) and all(2.0 <= s <= 4.0 for s in samples[6])
    assert len(set(samples[3])) > 100  # jittered, not one fixed pause


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 30
