"""Delivery attempts against a real receiver, on the test database: signing, outcomes, retries
scheduled, at most one success, refused addresses, lost attempts taken back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from app.db import session_scope, utcnow
from app.jobs.tables import JobTable
from app.settings import Settings
from app.webhooks import delivery, repository, service
from app.webhooks.tables import (
    AttemptOutcome,
    EventStatus,
    WebhookAttemptTable,
    WebhookEventTable,
)
from tests.webhooks.receiver import Receiver, signature_matches

TENANT = "hooks-delivery"
PAYLOAD = json.dumps({"id": "job-1", "status": "succeeded"})


def _settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"webhook_allow_loopback": True, "webhook_retry_backoff_s": 30}
    return Settings(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def new_event(database_url: str) -> Iterator[object]:
    """Makes committed events (on a job of their own); removes them afterwards."""
    job_ids: list[str] = []

    def make(url: str) -> str:
        with session_scope() as session:
            job = JobTable(tenant_id=TENANT, recipe={"passes": []}, benchmark_options={})
            session.add(job)
            session.flush()
            event = repository.add_event(
                session,
                WebhookEventTable(
                    tenant_id=TENANT, job_id=job.id, event="completed", url=url,
                    payload=PAYLOAD, next_attempt_at=utcnow(),
                ),
            )  # fmt: skip
            job_ids.append(job.id)
            return event.id

    yield make
    with session_scope() as session:
        session.execute(delete(JobTable).where(JobTable.id.in_(job_ids)))


def _event(event_id: str) -> tuple[WebhookEventTable, list[WebhookAttemptTable]]:
    with session_scope() as session:
        event = session.get(WebhookEventTable, event_id)
        assert event is not None
        session.expunge(event)
        return event, repository.list_attempts(session, [event_id])


def _due_now(event_id: str) -> None:
    with session_scope() as session:
        session.execute(
            update(WebhookEventTable)
            .where(WebhookEventTable.id == event_id)
            .values(next_attempt_at=utcnow())
        )


def test_a_delivery_is_signed_and_made_once(receiver: Receiver, new_event: object) -> None:
    event_id = new_event(receiver.url("/ok"))  # type: ignore[operator]

    first = delivery.deliver(event_id, _settings())
    duplicate = delivery.deliver(event_id, _settings())

    assert first is not None and first.outcome == AttemptOutcome.SUCCEEDED
    assert duplicate is None
    [got] = receiver.received
    assert got.body == PAYLOAD.encode()
    assert got.headers["webhook-id"] == event_id
    assert got.headers["content-type"] == "application/json"
    with session_scope() as session:
        key = service.get_secret(session, tenant_id=TENANT).key
    assert signature_matches(key, got.headers, got.body)
    event, attempts = _event(event_id)
    assert event.status == EventStatus.SUCCEEDED and event.finished_at is not None
    assert [(a.number, a.outcome, a.status_code) for a in attempts] == [(1, "succeeded", 200)]


def test_a_server_error_is_tried_again_later_with_the_same_id_and_body(
    receiver: Receiver, new_event: object
) -> None:
    receiver.script["/flaky"] = [503, 200]
    event_id = new_event(receiver.url("/flaky"))  # type: ignore[operator]

    failed = delivery.deliver(event_id, _settings())
    event, _ = _event(event_id)
    too_early = delivery.deliver(event_id, _settings())
    _due_now(event_id)
    retried = delivery.deliver(event_id, _settings())

    assert failed is not None and failed.outcome == AttemptOutcome.FAILED
    assert event.status == EventStatus.PENDING
    assert timedelta(seconds=25) < event.next_attempt_at - utcnow() <= timedelta(seconds=30)
    assert too_early is None
    assert retried is not None and retried.outcome == AttemptOutcome.SUCCEEDED
    first, second = receiver.at("/flaky")
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event_id
    _, attempts = _event(event_id)
    assert [(a.outcome, a.status_code) for a in attempts] == [("failed", 503), ("succeeded", 200)]


def test_the_backoff_doubles_up_to_its_cap() -> None:
    settings = _settings(webhook_retry_backoff_s=10, webhook_retry_max_backoff_s=600)

    waits = [delivery.backoff_s(n, settings) for n in range(1, 9)]

    assert waits == [10, 20, 40, 80, 160, 320, 600, 600]


def test_a_client_error_stops_and_the_last_attempt_gives_up(
    receiver: Receiver, new_event: object
) -> None:
    receiver.script["/gone"] = [410]
    receiver.script["/down"] = [500]
    gone = new_event(receiver.url("/gone"))  # type: ignore[operator]
    down = new_event(receiver.url("/down"))  # type: ignore[operator]

    rejected = delivery.deliver(gone, _settings())
    last = delivery.deliver(down, _settings(webhook_max_attempts=1))

    assert rejected is not None and rejected.outcome == AttemptOutcome.REJECTED
    assert last is not None and last.outcome == AttemptOutcome.FAILED
    assert _event(gone)[0].status == _event(down)[0].status == EventStatus.FAILED


def test_a_refused_address_is_recorded_and_not_tried_again(
    receiver: Receiver, new_event: object
) -> None:
    event_id = new_event(receiver.url("/private"))  # type: ignore[operator]

    refused = delivery.deliver(event_id, _settings(webhook_allow_loopback=False))

    assert refused is not None and refused.outcome == AttemptOutcome.REFUSED
    assert receiver.received == []
    event, [attempt] = _event(event_id)
    assert event.status == EventStatus.FAILED
    assert attempt.outcome == "refused" and "loopback" in (attempt.error or "")


def test_a_receiver_too_slow_to_answer_is_a_failed_attempt(
    receiver: Receiver, new_event: object
) -> None:
    receiver.delay_s["/slow"] = 2.0
    event_id = new_event(receiver.url("/slow"))  # type: ignore[operator]

    slow = delivery.deliver(event_id, _settings(webhook_timeout_s=0.5))

    assert slow is not None and slow.outcome == AttemptOutcome.FAILED
    assert slow.error is not None and "no answer in 0.5 s" in slow.error
    assert _event(event_id)[0].status == EventStatus.PENDING


def test_an_attempt_whose_worker_vanished_is_taken_back(new_event: object) -> None:
    event_id = new_event("http://127.0.0.1:9/never")  # type: ignore[operator]
    with session_scope() as session:
        claimed = repository.claim(session, event_id, utcnow(), utcnow() - timedelta(seconds=1))
    assert claimed is not None

    delivery.recover_lost_attempts(_settings())

    event, [attempt] = _event(event_id)
    assert event.status == EventStatus.PENDING and event.dispatched_at is None
    assert (attempt.number, attempt.outcome) == (1, "lost")
    with session_scope() as session:
        again = repository.claim(session, event_id, utcnow(), utcnow() + timedelta(seconds=60))
        assert again is not None and again.attempts == 2
        assert (
            session.scalar(select(WebhookEventTable.status).where(WebhookEventTable.id == event_id))
            == "sending"
        )
