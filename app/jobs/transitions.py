"""Listeners told of every job status change, inside the transaction that makes it.

Other packages (webhooks) register here instead of being imported by the jobs package: what a
listener writes with the session commits or rolls back together with the change itself.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from app.jobs.lifecycle import JobStatus

# (session, job id, status before, status after); called after the row was updated.
TransitionListener = Callable[[Session, str, JobStatus, JobStatus], None]

_listeners: list[TransitionListener] = []


def add_listener(listener: TransitionListener) -> None:
    """Call `listener` on every successful transition from now on (once, however often added)."""
    if listener not in _listeners:
        _listeners.append(listener)


def notify(session: Session, job_id: str, before: JobStatus, after: JobStatus) -> None:
    """Tell every listener; an error in one rolls back the transition with the transaction."""
    for listener in _listeners:
        listener(session, job_id, before, after)
