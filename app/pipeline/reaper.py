"""No lost jobs: requeue (or fail) running jobs whose worker vanished, and drain the outbox."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import or_

from app.db import session_scope, utcnow
from app.jobs import queue, repository
from app.jobs.lifecycle import JobStatus
from app.jobs.tables import JobTable
from app.pipeline.frame import BENCHMARK_HANDOFF
from app.settings import Settings, get_settings

log = logging.getLogger(__name__)


def reap_lost_jobs(settings: Settings | None = None) -> dict[str, int]:
    """One sweep: every running job with an expired lease is requeued, or failed after
    `max_attempts` runs. Safe to run from every worker at once (conditional updates)."""
    settings = settings or get_settings()
    now = utcnow()
    stale_before = now - timedelta(seconds=settings.heartbeat_timeout_s)
    # A job waiting in the benchmark queue renews nothing; only a very long wait means it is lost.
    handoff_stale_before = stale_before - timedelta(seconds=settings.job_time_limit_s)
    requeued: list[tuple[str, str]] = []
    failed = 0
    with session_scope() as session:
        for job in repository.list_stale_running(session, stale_before):
            if (
                job.stage == BENCHMARK_HANDOFF
                and job.heartbeat_at
                and (job.heartbeat_at >= handoff_stale_before)
            ):
                continue
            still_stale = (
                or_(JobTable.heartbeat_at.is_(None), JobTable.heartbeat_at < stale_before),
            )
            if job.attempts >= settings.max_attempts:
                failed += repository.transition(
                    session, job.id, JobStatus.RUNNING, JobStatus.FAILED, where=still_stale,
                    error={
                        "code": "worker_lost",
                        "message": f"the worker running this job vanished; tried {job.attempts} "
                        "times",
                    },
                    finished_at=now, stage="failed",
                )  # fmt: skip
            elif repository.transition(
                session, job.id, JobStatus.RUNNING, JobStatus.QUEUED, where=still_stale,
                stage="requeued", heartbeat_at=None, enqueued_at=None,
            ):  # fmt: skip
                requeued.append((job.id, job.kind))
    for job_id, kind in requeued:
        log.warning("job %s lost its worker; requeued", job_id)
        queue.enqueue(session_scope, job_id, kind)
    return {"requeued": len(requeued), "failed": failed}


def sweep_outbox(min_age_s: float = 10.0) -> int:
    """Send queued jobs that never reached the broker, or whose message the broker lost."""
    now = utcnow()
    resend_before = now - timedelta(seconds=get_settings().queued_resend_after_s)
    with session_scope() as session:
        pending = repository.list_unenqueued(
            session, now - timedelta(seconds=min_age_s), resend_before
        )
    return sum(queue.enqueue(session_scope, job_id, kind) for job_id, kind in pending)


def sweep_once(settings: Settings) -> None:
    try:
        reap_lost_jobs(settings)
        sweep_outbox(min_age_s=settings.reaper_interval_s)
    except Exception:
        log.warning("reaper sweep failed; trying again later", exc_info=True)


def start_background_reaper(settings: Settings | None = None) -> threading.Event:
    """Run sweeps every `reaper_interval_s` in a daemon thread; set the event to stop it."""
    settings = settings or get_settings()
    stop = threading.Event()

    def loop() -> None:
        sweep_once(settings)
        while not stop.wait(settings.reaper_interval_s):
            sweep_once(settings)

    threading.Thread(target=loop, name="modelpress-reaper", daemon=True).start()
    return stop
