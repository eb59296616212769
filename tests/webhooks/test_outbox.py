"""Events recorded with the job's status change, in its transaction: start once, completed at
the end, only those the job's filter asks for."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.jobs import repository as jobs_repository
from app.jobs.lifecycle import JobStatus
from app.webhooks import outbox
from app.webhooks.tables import WebhookEventTable
from tests.factories import add_job, add_model

HOOK = "https://hooks.example.com/x"
QUEUED, RUNNING, SUCCEEDED, FAILED = (
    JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED,
)  # fmt: skip


def _events(session: Session, job_id: str) -> list[WebhookEventTable]:
    query = select(WebhookEventTable).where(WebhookEventTable.job_id == job_id)
    return list(session.scalars(query.order_by(WebhookEventTable.created_at)))


def test_start_is_recorded_once_even_after_a_requeue(db_session: Session) -> None:
    outbox.install()
    job = add_job(db_session, add_model(db_session), webhook=HOOK,
                  webhook_events_filter=["start", "completed"])  # fmt: skip

    jobs_repository.transition(db_session, job.id, QUEUED, RUNNING, stage="starting")
    jobs_repository.transition(db_session, job.id, RUNNING, QUEUED, stage="requeued")
    jobs_repository.transition(db_session, job.id, QUEUED, RUNNING, stage="starting")
    jobs_repository.transition(db_session, job.id, RUNNING, SUCCEEDED, stage="done")

    start, completed = _events(db_session, job.id)
    assert (start.event, completed.event) == ("start", "completed")
    assert json.loads(start.payload)["status"] == "running"
    assert json.loads(start.payload)["stage"] == "starting"
    assert json.loads(completed.payload)["status"] == "succeeded"
    assert start.url == HOOK and start.status == "pending" and start.attempts == 0


def test_only_the_filtered_events_and_only_with_a_webhook(db_session: Session) -> None:
    outbox.install()
    model = add_model(db_session)
    completed_only = add_job(db_session, model, webhook=HOOK, webhook_events_filter=["completed"])
    no_hook = add_job(db_session, model)

    for job in (completed_only, no_hook):
        jobs_repository.transition(db_session, job.id, QUEUED, RUNNING)
        jobs_repository.transition(db_session, job.id, RUNNING, FAILED)

    assert [e.event for e in _events(db_session, completed_only.id)] == ["completed"]
    assert _events(db_session, no_hook.id) == []


def test_a_transition_rolled_back_leaves_no_event(db_session: Session) -> None:
    outbox.install()
    job = add_job(db_session, add_model(db_session), webhook=HOOK,
                  webhook_events_filter=["start", "completed"])  # fmt: skip

    savepoint = db_session.begin_nested()
    jobs_repository.transition(db_session, job.id, QUEUED, JobStatus.CANCELED)
    savepoint.rollback()

    assert _events(db_session, job.id) == []
    assert jobs_repository.get_for_worker(db_session, job.id).status == "queued"  # type: ignore[union-attr]


def test_a_transition_that_does_not_happen_records_nothing(db_session: Session) -> None:
    outbox.install()
    job = add_job(db_session, add_model(db_session), webhook=HOOK,
                  webhook_events_filter=["start", "completed"])  # fmt: skip

    assert not jobs_repository.transition(db_session, job.id, RUNNING, SUCCEEDED)
    assert _events(db_session, job.id) == []
