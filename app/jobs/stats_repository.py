"""Read-only job statistics for the operator's /metrics, across every tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.jobs.lifecycle import TERMINAL_STATES, JobStatus
from app.jobs.tables import JobTable


@dataclass(frozen=True)
class FinishedJob:
    kind: str
    status: str
    duration_s: float


def finished_since(session: Session, since: datetime) -> list[FinishedJob]:
    """Jobs that ran and reached a terminal state at or after `since`, with their run time."""
    rows = session.execute(
        select(JobTable.kind, JobTable.status, JobTable.started_at, JobTable.finished_at).where(
            JobTable.status.in_([s.value for s in TERMINAL_STATES]),
            JobTable.finished_at >= since,
            JobTable.started_at.is_not(None),
        )
    ).tuples()
    return [
        FinishedJob(kind, status, max(0.0, (finished - started).total_seconds()))
        for kind, status, started, finished in rows
        if started is not None and finished is not None
    ]


def failures_by_code(session: Session) -> dict[str, int]:
    """Failed jobs by their error code, all time."""
    code = JobTable.error["code"].as_string()
    rows = session.execute(
        select(code, func.count()).where(JobTable.status == JobStatus.FAILED.value).group_by(code)
    ).tuples()
    return {code or "unknown": count for code, count in rows}


def count_waiting(session: Session, *, status: JobStatus, stage: str | None = None) -> int:
    """Jobs in `status` (and `stage`): what the embedded broker's queues hold."""
    query = select(func.count()).select_from(JobTable).where(JobTable.status == status.value)
    if stage is not None:
        query = query.where(JobTable.stage == stage)
    return int(session.execute(query).scalar_one())
