"""Thin Celery tasks: they receive ids and call into app/."""

from __future__ import annotations

from typing import Any

from app.jobs.queue import ADVANCE_TASK, AUTO_TASK, BENCHMARK_TASK, RUN_JOB_TASK, WEBHOOK_TASK
from app.observability.logging import bind_job_context
from app.pipeline.auto import advance, notify_parent, run_auto
from app.pipeline.benchmark import run_benchmark
from app.pipeline.compress import run_compress
from app.pipeline.frame import TransientJobError
from app.settings import get_settings
from app.webhooks.delivery import deliver
from worker.celery_app import celery_app


def _retrying(task: Any, stage: Any, job_id: str) -> None:
    """Run a stage; a transient failure (storage) has handed the job back to the queue, and the
    task runs again after a doubling delay, until the last retry fails the job for good."""
    settings = get_settings()
    retries = task.request.retries
    bind_job_context(job_id=job_id, retry=retries)
    try:
        stage(job_id, final_attempt=retries >= settings.storage_retries)
    except TransientJobError as exc:
        raise task.retry(
            exc=exc,
            countdown=settings.storage_retry_backoff_s * 2**retries,
            max_retries=settings.storage_retries,
        ) from exc


@celery_app.task(name=RUN_JOB_TASK, bind=True)
def run_job(self: Any, job_id: str) -> None:
    """The compress stage: run the recipe's passes, then queue the benchmark."""
    _retrying(self, run_compress, job_id)
    notify_parent(job_id)  # a candidate that ended here (failed, canceled) tells its auto job


@celery_app.task(name=BENCHMARK_TASK, bind=True)
def benchmark_job(self: Any, job_id: str) -> None:
    """The benchmark stage: time and evaluate, then finish the job."""
    _retrying(self, run_benchmark, job_id)
    notify_parent(job_id)


@celery_app.task(name=AUTO_TASK, bind=True)
def auto_job(self: Any, job_id: str) -> None:
    """An auto job's fan-out: plan its candidates and send them as compress jobs."""
    _retrying(self, run_auto, job_id)


@celery_app.task(name=ADVANCE_TASK)
def advance_auto(job_id: str) -> None:
    """Look at an auto job's candidates again: fall back, or finish with a recommendation."""
    advance(job_id)


@celery_app.task(name=WEBHOOK_TASK)
def deliver_webhook(event_id: str) -> None:
    """One attempt of a webhook event; the next one, if any, is scheduled by the attempt itself."""
    deliver(event_id)
