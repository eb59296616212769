"""The broker side of jobs: Celery settings shared with the worker, and sending by task name."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from celery import Celery

from app.db import utcnow
from app.jobs import repository
from app.jobs.lifecycle import JobKind
from app.settings import Settings, get_settings

log = logging.getLogger(__name__)

# The API never imports the worker package: it sends tasks by these names.
RUN_JOB_TASK = "modelpress.run_job"
BENCHMARK_TASK = "modelpress.benchmark_job"
AUTO_TASK = "modelpress.auto_job"  # an auto job's fan-out: plan and create its candidates
ADVANCE_TASK = "modelpress.advance_auto"  # look at an auto job's candidates again
WEBHOOK_TASK = "modelpress.deliver_webhook"  # one attempt of a webhook event


class BrokerError(Exception):
    """The broker could not be reached to publish a task."""


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings used by both the producer (API) and the worker."""
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "task_default_queue": settings.queue_name,
        # A job is acknowledged only once it has ended; a worker that dies hands it back.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.job_time_limit_s,
        "task_time_limit": settings.job_time_limit_s + 60,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 5,
        "worker_hijack_root_logger": False,
        # Deliveries have a worker of their own (a thread pool): never behind a long job.
        "task_routes": {WEBHOOK_TASK: {"queue": settings.webhook_queue_name}},
    }
    if settings.broker_url.startswith(("redis://", "rediss://")):
        # Redis redelivers an unacknowledged task after this long: longer than any job may run.
        config["broker_transport_options"] = {"visibility_timeout": settings.job_time_limit_s + 600}
    return config


@lru_cache
def producer() -> Celery:
    app = Celery("modelpress-api")
    app.conf.update(celery_config(get_settings()))
    return app


def _send(task: str, job_id: str, queue_name: str, countdown: float | None = None) -> None:
    try:
        producer().send_task(
            task,
            args=[job_id],
            queue=queue_name,
            countdown=countdown,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )
    except Exception as exc:  # kombu raises a family of connection errors; all mean the same
        # Its pooled connections may be dead after a broker restart: start afresh next time.
        producer.cache_clear()
        raise BrokerError(f"could not publish {task} for {job_id}: {exc}") from exc


def send_run_job(job_id: str) -> None:
    """Publish the compress stage of a job on the compression queue."""
    _send(RUN_JOB_TASK, job_id, get_settings().queue_name)


def send_benchmark(job_id: str) -> None:
    """Publish the benchmark stage on its own queue, where jobs are timed one at a time."""
    _send(BENCHMARK_TASK, job_id, get_settings().benchmark_queue_name)


def send_auto(job_id: str) -> None:
    """Publish an auto job's fan-out on the compression queue."""
    _send(AUTO_TASK, job_id, get_settings().queue_name)


def send_advance(parent_job_id: str) -> None:
    """Ask a worker to look at an auto job again (a candidate ended)."""
    _send(ADVANCE_TASK, parent_job_id, get_settings().queue_name)


def send_webhook(event_id: str, countdown: float | None = None) -> None:
    """Publish one attempt of a webhook event on the webhooks queue, to run after `countdown` s."""
    _send(WEBHOOK_TASK, event_id, get_settings().webhook_queue_name, countdown)


def resend_each(ids: Iterable[str], send: Callable[[str], None], what: str) -> int:
    """Send a sweep's tasks again, one per id; how many reached the broker (a broker error
    leaves the rest to the next sweep, which finds them still due)."""
    sent = 0
    for item_id in ids:
        try:
            send(item_id)
        except BrokerError as exc:
            log.warning("could not resend %s %s (%s); later", what, item_id, exc)
            continue
        log.warning("%s %s had no message on its way; sent again", what, item_id)
        sent += 1
    return sent


def enqueue(session_factory: Any, job_id: str, kind: str) -> bool:
    """Send a committed job to the broker and record that it was sent; False if it could not be."""
    try:
        if kind == JobKind.BENCHMARK:
            send_benchmark(job_id)
        elif kind == JobKind.AUTO:
            send_auto(job_id)
        else:
            send_run_job(job_id)
    except BrokerError as exc:
        # The job row is committed with enqueued_at NULL: the outbox sweep sends it later.
        log.warning("could not enqueue job %s (%s); it stays in the outbox", job_id, exc)
        return False
    with session_factory() as session:
        repository.mark_enqueued(session, job_id, utcnow())
    return True
