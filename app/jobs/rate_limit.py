"""RateLimit-* headers of job and benchmark submissions, read from the count the service limits."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Response
from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import ProblemError
from app.jobs import repository
from app.settings import get_settings

# The service's window: a tenant may submit `job_submissions_per_minute` jobs in any minute.
WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class SubmissionQuota:
    """Where a tenant stands against the per-minute submission limit."""

    limit: int
    remaining: int
    reset_s: int  # until the oldest counted submission leaves the window and frees a slot

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }


def submission_quota(session: Session, *, tenant_id: str) -> SubmissionQuota:
    """The tenant's quota now, counting the jobs created in the last minute."""
    limit = get_settings().job_submissions_per_minute
    now = utcnow()
    since = now - WINDOW
    used = repository.count_created_since(session, since, tenant_id=tenant_id)
    oldest = repository.oldest_created_since(session, since, tenant_id=tenant_id)
    reset_s = 0 if oldest is None else max(0, math.ceil((oldest + WINDOW - now).total_seconds()))
    return SubmissionQuota(limit=limit, remaining=max(0, limit - used), reset_s=reset_s)


@contextmanager
def reported(session: Session, response: Response, *, tenant_id: str) -> Iterator[None]:
    """Around a submission: the quota goes on its response, or on the 429 it raised."""
    try:
        yield
    except ProblemError as exc:
        if exc.status == 429:
            exc.headers.update(submission_quota(session, tenant_id=tenant_id).headers())
        raise
    response.headers.update(submission_quota(session, tenant_id=tenant_id).headers())
