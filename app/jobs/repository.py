"""All SQL on the jobs table. State changes are conditional updates on the expected state.

`tenant_id` is keyword-only, as in every repository. The functions without it act on a job by
its id for the worker and the sweeps, which receive bare ids; the API looks a job up with `get`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.jobs import transitions
from app.jobs.lifecycle import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    IllegalTransitionError,
    JobKind,
    JobStatus,
    can_transition,
)
from app.jobs.tables import JobTable
from app.pagination import Page, PageRequest, paginate


def add(session: Session, job: JobTable) -> JobTable:
    session.add(job)
    session.flush()
    return job


def get(session: Session, job_id: str, *, tenant_id: str) -> JobTable | None:
    return session.scalar(
        select(JobTable).where(JobTable.id == job_id, JobTable.tenant_id == tenant_id)
    )


def get_for_worker(session: Session, job_id: str) -> JobTable | None:
    """The job whatever its tenant: only for the worker, whose task carries nothing but the id."""
    return session.scalar(select(JobTable).where(JobTable.id == job_id))


def list_page(
    session: Session,
    page: PageRequest,
    *,
    tenant_id: str,
    status: str | None = None,
    model_id: str | None = None,
    parent_job_id: str | None = None,
    kinds: Collection[str] = (),
) -> Page[JobTable]:
    query = select(JobTable).where(JobTable.tenant_id == tenant_id)
    if kinds:
        query = query.where(JobTable.kind.in_(list(kinds)))
    if parent_job_id is not None:
        query = query.where(JobTable.parent_job_id == parent_job_id)
    if status is not None:
        query = query.where(JobTable.status == status)
    if model_id is not None:
        query = query.where(JobTable.model_id == model_id)
    return paginate(session, query, JobTable, page)


def transition(
    session: Session,
    job_id: str,
    expected: JobStatus,
    target: JobStatus,
    *,
    where: tuple[Any, ...] = (),
    **values: Any,
) -> bool:
    """Move a job from `expected` to `target`; False (and no change) if it is not in `expected`.

    The WHERE on the current status makes a duplicate or late delivery a no-op. The listeners
    (app.jobs.transitions) hear of a change in the same transaction.
    """
    if not can_transition(expected, target):
        raise IllegalTransitionError(f"{expected} -> {target} is not an allowed transition")
    result = session.execute(
        update(JobTable)
        .where(JobTable.id == job_id, JobTable.status == expected.value, *where)
        .values(status=target.value, **values)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    changed = bool(result.rowcount)  # type: ignore[attr-defined]
    if changed:
        transitions.notify(session, job_id, expected, target)
    return changed


def reclaim_running(
    session: Session, job_id: str, *, stale_before: datetime, handoff_stage: str | None = None
) -> bool:
    """Take over a running job whose worker went silent, or that a stage handed off to us.

    The heartbeat is a lease: a job with a fresh heartbeat belongs to a live worker and a
    duplicate delivery of its task must leave it alone.
    """
    takeover = or_(JobTable.heartbeat_at.is_(None), JobTable.heartbeat_at < stale_before)
    if handoff_stage is not None:
        takeover = or_(takeover, JobTable.stage == handoff_stage)
    result = session.execute(
        update(JobTable)
        .where(JobTable.id == job_id, JobTable.status == JobStatus.RUNNING.value, takeover)
        .values(heartbeat_at=utcnow(), stage="resuming" if handoff_stage is None else "starting")
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_handoffs_resent(session: Session, handoff_stage: str, sent_before: datetime) -> list[str]:
    """Ids of running jobs left at `handoff_stage` (their next task sent) since before
    `sent_before` and not resent since; each is marked resent now, so that of several sweepers
    only one resends it. The heartbeat stays as it was: the lease still ends a job that no
    worker ever picks up."""
    result = session.execute(
        update(JobTable)
        .where(
            JobTable.status == JobStatus.RUNNING.value,
            JobTable.stage == handoff_stage,
            JobTable.heartbeat_at < sent_before,
            or_(JobTable.enqueued_at.is_(None), JobTable.enqueued_at < sent_before),
        )
        .values(enqueued_at=utcnow())
        .returning(JobTable.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())


def touch(session: Session, job_id: str) -> bool:
    """Renew a running job's heartbeat (its lease)."""
    result = session.execute(
        update(JobTable)
        .where(JobTable.id == job_id, JobTable.status == JobStatus.RUNNING.value)
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def list_stale_running(
    session: Session, stale_before: datetime, limit: int = 100
) -> list[JobTable]:
    """Running jobs whose worker has not renewed the lease since `stale_before`."""
    query = (
        select(JobTable)
        .where(
            JobTable.status == JobStatus.RUNNING.value,
            or_(JobTable.heartbeat_at.is_(None), JobTable.heartbeat_at < stale_before),
        )
        .order_by(JobTable.heartbeat_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def report_progress(session: Session, job_id: str, stage: str, progress: float) -> bool:
    """Record the stage a running job reached; False if the job is no longer running."""
    result = session.execute(
        update(JobTable)
        .where(JobTable.id == job_id, JobTable.status == JobStatus.RUNNING.value)
        .values(stage=stage, progress=progress, heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_report(session: Session, job_id: str, report: dict[str, Any]) -> bool:
    """Store the per-pass report of a running job; False if it is no longer running."""
    result = session.execute(
        update(JobTable)
        .where(JobTable.id == job_id, JobTable.status == JobStatus.RUNNING.value)
        .values(report=report, heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_enqueued(session: Session, job_id: str, at: datetime) -> None:
    session.execute(
        update(JobTable)
        .where(JobTable.id == job_id, JobTable.status == JobStatus.QUEUED.value)
        .values(enqueued_at=at)
        .execution_options(synchronize_session=False)
    )


def list_unenqueued(
    session: Session, older_than: datetime, resend_before: datetime, limit: int = 100
) -> list[tuple[str, str]]:
    """(id, kind) of queued jobs to send: never sent (the outbox), or sent so long ago that the
    message was probably lost with the broker's data."""
    query = (
        select(JobTable.id, JobTable.kind)
        .where(
            JobTable.status == JobStatus.QUEUED.value,
            or_(
                JobTable.enqueued_at.is_(None) & (JobTable.created_at < older_than),
                JobTable.enqueued_at < resend_before,
            ),
        )
        .order_by(JobTable.created_at)
        .limit(limit)
    )
    return [(row.id, row.kind) for row in session.execute(query)]


def count_active_for_model(session: Session, model_id: str) -> int:
    """Queued or running jobs that read this model (as input or as baseline)."""
    query = select(func.count()).where(
        or_(JobTable.model_id == model_id, JobTable.baseline_model_id == model_id),
        JobTable.status.in_([s.value for s in ACTIVE_STATES]),
    )
    return int(session.scalar(query) or 0)


def count_active_for_tenant(session: Session, *, tenant_id: str) -> int:
    query = select(func.count()).where(
        JobTable.tenant_id == tenant_id, JobTable.status.in_([s.value for s in ACTIVE_STATES])
    )
    return int(session.scalar(query) or 0)


def count_created_since(session: Session, since: datetime, *, tenant_id: str) -> int:
    query = select(func.count()).where(
        JobTable.tenant_id == tenant_id, JobTable.created_at >= since
    )
    return int(session.scalar(query) or 0)


def oldest_created_since(session: Session, since: datetime, *, tenant_id: str) -> datetime | None:
    query = select(func.min(JobTable.created_at)).where(
        JobTable.tenant_id == tenant_id, JobTable.created_at >= since
    )
    return session.scalar(query)


def count_active_for_dataset(session: Session, dataset_id: str) -> int:
    """Queued or running jobs that read this dataset."""
    query = select(func.count()).where(
        or_(JobTable.calibration_dataset_id == dataset_id, JobTable.eval_dataset_id == dataset_id),
        JobTable.status.in_([s.value for s in ACTIVE_STATES]),
    )
    return int(session.scalar(query) or 0)


def count_by_status(session: Session) -> dict[str, int]:
    """Jobs of every tenant by status: the operator's metrics."""
    rows = session.execute(select(JobTable.status, func.count()).group_by(JobTable.status))
    return {status: count for status, count in rows.tuples()}


def lock_job(session: Session, job_id: str) -> None:
    """Serialize writers on one job until the transaction ends (an auto job's advance).

    Postgres: an advisory transaction lock on the id; SQLite has one writer at a time already.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"job:{job_id}"))))


def list_children(session: Session, parent_job_id: str) -> list[JobTable]:
    """An auto job's candidates, oldest first."""
    query = (
        select(JobTable)
        .where(JobTable.parent_job_id == parent_job_id)
        .order_by(JobTable.created_at, JobTable.id)
    )
    return list(session.scalars(query))


def list_searching_auto_ids(session: Session, stage: str, limit: int = 100) -> list[str]:
    """Running auto jobs waiting on their candidates (at `stage`)."""
    query = (
        select(JobTable.id)
        .where(
            JobTable.kind == JobKind.AUTO.value,
            JobTable.status == JobStatus.RUNNING.value,
            JobTable.stage == stage,
        )
        .order_by(JobTable.created_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def recent_metrics(session: Session, limit: int = 50) -> list[tuple[dict[str, Any], datetime]]:
    """(metrics, finished_at) of the latest succeeded jobs of every tenant, newest first:
    where the workers' host fingerprints show."""
    query = (
        select(JobTable.metrics, JobTable.finished_at)
        .where(
            JobTable.status == JobStatus.SUCCEEDED.value,
            JobTable.metrics.is_not(None),
            JobTable.finished_at.is_not(None),
        )
        .order_by(JobTable.finished_at.desc())
        .limit(limit)
    )
    return [(m, at) for m, at in session.execute(query).tuples() if isinstance(m, dict)]


def list_finished_before(session: Session, cutoff: datetime, limit: int = 500) -> list[JobTable]:
    """Ended jobs of any tenant created before `cutoff`: what retention deletes."""
    query = select(JobTable).where(
        JobTable.created_at < cutoff,
        JobTable.status.in_([s.value for s in TERMINAL_STATES]),
        JobTable.parent_job_id.is_(None),  # a candidate goes with its auto job
    )
    return list(session.scalars(query.limit(limit)))


def delete(session: Session, job: JobTable) -> None:
    session.delete(job)
    session.flush()


def read_states(session: Session, job_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """(status, stage) of each of these jobs that still exists, whatever its tenant: one query
    for every long-poll waiting in this process."""
    rows = session.execute(
        select(JobTable.id, JobTable.status, JobTable.stage).where(JobTable.id.in_(job_ids))
    )
    return {job_id: (status, stage) for job_id, status, stage in rows}
