"""Conditional transitions: a duplicate or late delivery changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from app.jobs import repository
from app.jobs.lifecycle import IllegalTransitionError, JobStatus
from app.pagination import PageRequest
from tests.factories import add_job, add_model


def test_transition_moves_a_job_in_the_expected_state(db_session: Session) -> None:
    job = add_job(db_session, add_model(db_session))

    moved = repository.transition(db_session, job.id, JobStatus.QUEUED, JobStatus.RUNNING)

    assert moved
    db_session.refresh(job)
    assert job.status == "running"


def test_duplicate_delivery_changes_nothing(db_session: Session) -> None:
    job = add_job(db_session, add_model(db_session))
    repository.transition(db_session, job.id, JobStatus.QUEUED, JobStatus.RUNNING)

    again = repository.transition(db_session, job.id, JobStatus.QUEUED, JobStatus.RUNNING)

    assert not again


def test_a_canceled_job_cannot_succeed_later(db_session: Session) -> None:
    job = add_job(db_session, add_model(db_session), status="running")
    repository.transition(db_session, job.id, JobStatus.RUNNING, JobStatus.CANCELED)

    late = repository.transition(db_session, job.id, JobStatus.RUNNING, JobStatus.SUCCEEDED)

    assert not late
    db_session.refresh(job)
    assert job.status == "canceled"


def test_transitions_outside_the_map_are_refused(db_session: Session) -> None:
    job = add_job(db_session, add_model(db_session), status="succeeded")

    with pytest.raises(IllegalTransitionError):
        repository.transition(db_session, job.id, JobStatus.SUCCEEDED, JobStatus.RUNNING)


def test_progress_is_recorded_only_while_running(db_session: Session) -> None:
    model = add_model(db_session)
    running = add_job(db_session, model, status="running")
    canceled = add_job(db_session, model, status="canceled")

    assert repository.report_progress(db_session, running.id, "quantize_dynamic", 0.5)
    assert not repository.report_progress(db_session, canceled.id, "quantize_dynamic", 0.5)


def test_pages_cover_every_job_once_newest_first(db_session: Session) -> None:
    model = add_model(db_session, tenant_id="paging")
    created = [add_job(db_session, model, tenant_id="paging").id for _ in range(5)]

    seen: list[str] = []
    cursor = None
    while True:
        page = repository.list_page(
            db_session, PageRequest(limit=2, cursor=cursor), tenant_id="paging"
        )
        seen += [job.id for job in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert sorted(seen) == sorted(created)
    assert len(seen) == len(set(seen))


def test_active_jobs_of_a_model_are_counted(db_session: Session) -> None:
    model = add_model(db_session)
    add_job(db_session, model, status="queued")
    add_job(db_session, model, status="running")
    add_job(db_session, model, status="failed")

    assert repository.count_active_for_model(db_session, model.id) == 2
