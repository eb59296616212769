"""The Celery application the worker runs (`celery -A worker.celery_app worker`)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun, worker_ready

from app.jobs.queue import celery_config
from app.observability.logging import bind_job_context, clear_job_context, configure_logging
from app.pipeline.reaper import start_background_reaper, start_webhook_sweeper
from app.settings import get_settings
from app.webhooks import outbox as webhooks_outbox
from worker.broker import REDIS_TRANSPORT

log = logging.getLogger(__name__)

celery_app = Celery("modelpress", include=["worker.tasks"])
celery_app.conf.update(celery_config(get_settings()))
if celery_app.conf.broker_url.startswith(("redis://", "rediss://")):
    # kombu's Redis transport with the fix that keeps the worker alive when Redis goes away
    # while it holds a task (see worker.broker).
    celery_app.conf.broker_transport = REDIS_TRANSPORT
app = celery_app
# Job transitions made in this worker record their webhook events (app.webhooks.outbox).
webhooks_outbox.install()


@setup_logging.connect
def _setup_logging(**_: Any) -> None:
    # A receiver here stops Celery from configuring logging itself: our one setup, for the
    # worker and the pool processes it forks.
    configure_logging()


@task_prerun.connect
def _fresh_task_context(task_id: str, **_: Any) -> None:
    # A pool process runs task after task: nothing of the last one's job may leak into this
    # one's lines. The task binds its job id (worker.tasks); it stays bound until postrun, so
    # Celery's own line about the task's end names the job too.
    clear_job_context()
    bind_job_context(task_id=task_id)


@task_postrun.connect
def _end_task_context(**_: Any) -> None:
    clear_job_context()


@worker_ready.connect
def _start_reaper(sender: Any = None, **_: Any) -> None:
    # Every worker sweeps for lost jobs and unsent ones (the outbox); the sweeps are idempotent.
    # A worker of the webhooks queue alone runs no jobs: it sweeps only webhook events.
    consumed = set(sender.app.amqp.queues.consume_from) if sender is not None else set()
    if consumed == {get_settings().webhook_queue_name}:
        start_webhook_sweeper()
    else:
        start_background_reaper()
