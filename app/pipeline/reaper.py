"""No lost jobs: requeue (or fail) running jobs whose worker vanished, drain the outbox, resend
lost benchmark hand-offs, advance auto jobs waiting on their candidates, resend lost webhook
deliveries; and no leftovers of crashes (app.pipeline.leftovers)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import or_

from app.db import session_scope, utcnow
from app.jobs import queue, repository
from app.jobs.lifecycle import JobKind, JobStatus
from app.jobs.tables import JobTable
from app.pipeline import auto, leftovers, stopping
from app.pipeline.frame import BENCHMARK_HANDOFF
from app.settings import Settings, get_settings
from app.storage import get_storage
from app.webhooks import delivery as webhooks

log = logging.getLogger(__name__)


def reap_lost_jobs(settings: Settings | None = None) -> dict[str, int]:
    """One sweep: every running job with an expired lease is requeued, or failed after
    `max_attempts` runs. Safe to run from every worker at once (conditional updates)."""
    settings = settings or get_settings()
    now = utcnow()
    stale_before = now - timedelta(seconds=settings.heartbeat_timeout_s)
    # A job waiting in the benchmark queue renews nothing: its task is resent after a short
    # while (resend_lost_handoffs); only a very long wait means no worker takes it at all.
    handoff_stale_before = stale_before - timedelta(seconds=settings.job_time_limit_s)
    requeued: list[tuple[str, str]] = []
    failed: list[str] = []
    with session_scope() as session:
        for job in repository.list_stale_running(session, stale_before):
            if job.kind == JobKind.AUTO and job.stage == auto.SEARCHING:
                continue  # no worker holds it while its candidates run: advance_searching does
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
                if repository.transition(
                    session, job.id, JobStatus.RUNNING, JobStatus.FAILED, where=still_stale,
                    error={
                        "code": "worker_lost",
                        "message": f"the worker running this job vanished; tried {job.attempts} "
                        "times",
                    },
                    finished_at=now, stage="failed",
                ):  # fmt: skip
                    failed.append(job.id)
            elif repository.transition(
                session, job.id, JobStatus.RUNNING, JobStatus.QUEUED, where=still_stale,
                stage="requeued", heartbeat_at=None, enqueued_at=None,
            ):  # fmt: skip
                requeued.append((job.id, job.kind))
    for job_id, kind in requeued:
        log.warning("job %s lost its worker; requeued", job_id)
        queue.enqueue(session_scope, job_id, kind)
    for job_id in failed:
        # Once the failure is committed, like any other unsuccessful ending: no output stays.
        stopping.drop_output_if_unsuccessful(job_id, get_storage())
    return {"requeued": len(requeued), "failed": len(failed)}


def sweep_outbox(min_age_s: float = 10.0) -> int:
    """Send queued jobs that never reached the broker, or whose message the broker lost."""
    now = utcnow()
    resend_before = now - timedelta(seconds=get_settings().queued_resend_after_s)
    with session_scope() as session:
        pending = repository.list_unenqueued(
            session, now - timedelta(seconds=min_age_s), resend_before
        )
    return sum(queue.enqueue(session_scope, job_id, kind) for job_id, kind in pending)


def resend_lost_handoffs(settings: Settings | None = None) -> int:
    """Send the benchmark task again for compress jobs handed to the benchmark queue that no
    worker picked up within `queued_resend_after_s` (the broker may have lost the message). A
    duplicate finds the job taken (or ended) and changes nothing."""
    settings = settings or get_settings()
    sent_before = utcnow() - timedelta(seconds=settings.queued_resend_after_s)
    with session_scope() as session:
        job_ids = repository.mark_handoffs_resent(session, BENCHMARK_HANDOFF, sent_before)
    return queue.resend_each(job_ids, queue.send_benchmark, "the benchmark of job")


def sweep_once(settings: Settings) -> None:
    try:
        reap_lost_jobs(settings)
        sweep_outbox(min_age_s=settings.reaper_interval_s)
        resend_lost_handoffs(settings)
        auto.advance_searching()
    except Exception:
        log.warning("reaper sweep failed; trying again later", exc_info=True)
    sweep_webhooks_once(settings)


def sweep_webhooks_once(settings: Settings) -> None:
    try:
        webhooks.sweep(settings)
    except Exception:
        log.warning("webhook sweep failed; trying again later", exc_info=True)


def sweep_leftovers_once(settings: Settings) -> None:
    try:
        leftovers.sweep_leftovers(settings, get_storage())
    except Exception:
        log.warning("leftover sweep failed; trying again later", exc_info=True)


def start_background_reaper(settings: Settings | None = None) -> threading.Event:
    """Run sweeps every `reaper_interval_s`, and the leftover sweep every
    `leftover_sweep_interval_s`, in a daemon thread; set the event to stop it."""
    settings = settings or get_settings()
    stop = threading.Event()

    def loop() -> None:
        next_leftover_sweep = time.monotonic()
        while True:
            sweep_once(settings)
            if time.monotonic() >= next_leftover_sweep:
                sweep_leftovers_once(settings)
                next_leftover_sweep = time.monotonic() + settings.leftover_sweep_interval_s
            if stop.wait(settings.reaper_interval_s):
                return

    threading.Thread(target=loop, name="modelpress-reaper", daemon=True).start()
    return stop


def start_webhook_sweeper(settings: Settings | None = None) -> threading.Event:
    """The webhooks worker's sweep alone (lost and unsent deliveries) every
    `reaper_interval_s`, in a daemon thread; set the event to stop it."""
    settings = settings or get_settings()
    stop = threading.Event()

    def loop() -> None:
        while True:
            sweep_webhooks_once(settings)
            if stop.wait(settings.reaper_interval_s):
                return

    threading.Thread(target=loop, name="modelpress-webhook-sweeper", daemon=True).start()
    return stop
