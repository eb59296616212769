"""Prometheus metrics, rendered by prometheus-client on registries of our own.

Request durations are counted in the API process that served the request; several API processes
behind one scrape target share them through prometheus-client's multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set (otherwise scrape each process). Everything about jobs is read
from the database when /metrics is scraped, so it is right whichever API process answers and
counts the work of every worker process.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import timedelta

import redis
from prometheus_client import CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from app.db import utcnow
from app.jobs import repository as jobs_repository
from app.jobs import stats_repository
from app.jobs.lifecycle import JobStatus
from app.pipeline.frame import BENCHMARK_HANDOFF
from app.settings import Settings
from app.webhooks import repository as webhooks_repository
from app.webhooks.tables import EventStatus

log = logging.getLogger(__name__)

JOB_DURATION_WINDOW = timedelta(hours=1)
JOB_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)

PROCESS_REGISTRY = CollectorRegistry()
HTTP_REQUEST_DURATION = Histogram(
    "modelpress_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ["method", "route", "status"],
    registry=PROCESS_REGISTRY,
)


def _histogram_buckets(durations: Iterable[float]) -> tuple[list[tuple[str, float]], float]:
    values = sorted(durations)
    buckets = [(str(float(b)), float(sum(v <= b for v in values))) for b in JOB_DURATION_BUCKETS]
    buckets.append(("+Inf", float(len(values))))
    return buckets, sum(values)


class JobsCollector(Collector):
    """Job gauges, durations and failures from the database, read at scrape time."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("modelpress_jobs", "Jobs by status.", labels=["status"])
        for status, count in jobs_repository.count_by_status(self.session).items():
            jobs.add_metric([status], count)
        yield jobs
        yield self._durations()
        failures = CounterMetricFamily(
            "modelpress_job_failures", "Failed jobs by error code, all time.", labels=["code"]
        )
        for code, count in stats_repository.failures_by_code(self.session).items():
            failures.add_metric([code], count)
        yield failures
        yield self._queue_depth()
        yield from self._webhooks()

    def _webhooks(self) -> Iterator[Metric]:
        # Deliveries are made by the webhooks workers; their record is in the database.
        attempts = CounterMetricFamily(
            "modelpress_webhook_deliveries",
            "Webhook delivery attempts by outcome (succeeded, failed, rejected, refused, lost), "
            "all time.",
            labels=["outcome"],
        )
        for outcome, count in webhooks_repository.count_attempts_by_outcome(self.session).items():
            attempts.add_metric([outcome], count)
        yield attempts
        events = GaugeMetricFamily(
            "modelpress_webhook_events",
            "Webhook events by status (pending, sending, succeeded, failed).",
            labels=["status"],
        )
        for status, count in webhooks_repository.count_events_by_status(self.session).items():
            events.add_metric([status], count)
        yield events

    def _durations(self) -> Metric:
        family = HistogramMetricFamily(
            "modelpress_job_duration_seconds",
            "Run time (started to finished) of the jobs that finished in the last hour, by kind "
            "and outcome.",
            labels=["kind", "outcome"],
        )
        by_label: dict[tuple[str, str], list[float]] = defaultdict(list)
        for job in stats_repository.finished_since(self.session, utcnow() - JOB_DURATION_WINDOW):
            by_label[(job.kind, job.status)].append(job.duration_s)
        for (kind, outcome), durations in sorted(by_label.items()):
            buckets, total = _histogram_buckets(durations)
            family.add_metric([kind, outcome], buckets, total)
        return family

    def _queue_depth(self) -> Metric:
        family = GaugeMetricFamily(
            "modelpress_queue_depth", "Tasks waiting in each Celery queue.", labels=["queue"]
        )
        for queue, depth in self._depths().items():
            family.add_metric([queue], depth)
        return family

    def _depths(self) -> dict[str, int]:
        queues = (
            self.settings.queue_name,
            self.settings.benchmark_queue_name,
            self.settings.webhook_queue_name,
        )
        if self.settings.broker_url.startswith(("redis://", "rediss://")):
            # kombu's Redis transport keeps each queue as a list under the queue's name.
            try:
                client = redis.Redis.from_url(
                    self.settings.broker_url, socket_timeout=2, socket_connect_timeout=2
                )
                with client:
                    return {queue: int(client.llen(queue)) for queue in queues}
            except redis.RedisError as exc:
                log.warning("queue depth unavailable: %s", exc)
                return {}
        # The embedded broker: what waits for each queue, as the database knows it.
        return {
            queues[0]: stats_repository.count_waiting(self.session, status=JobStatus.QUEUED),
            queues[1]: stats_repository.count_waiting(
                self.session, status=JobStatus.RUNNING, stage=BENCHMARK_HANDOFF
            ),
            queues[2]: webhooks_repository.count_events_by_status(self.session).get(
                EventStatus.PENDING, 0
            ),
        }


def render_metrics(session: Session, settings: Settings) -> bytes:
    """This process's request metrics and the database's job metrics, in the text format."""
    process_registry = PROCESS_REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every API process writes its samples there; the one answering adds them all up.
        process_registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(process_registry)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector(session, settings))
    return generate_latest(process_registry) + generate_latest(registry)
