"""What every worker stage shares: claiming a job, reporting progress, failing, fetching files."""

from __future__ import annotations

import hashlib
import logging
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.orm import Session

from app.compression.errors import PassError
from app.compression.graph import archive
from app.compression.graph.analysis import InvalidModelError
from app.db import session_scope, utcnow
from app.jobs import repository
from app.jobs.lifecycle import JobStatus
from app.jobs.queue import BrokerError
from app.jobs.tables import JobTable
from app.observability.logging import bind_job_context, get_logger
from app.settings import get_settings
from app.storage import Storage, StorageError

log = logging.getLogger(__name__)
events = get_logger(__name__)  # the job's start, end and failure, as structured lines


# The stage a compress job is left in for the benchmark queue to pick up.
BENCHMARK_HANDOFF = "benchmark_queued"


class TransientJobError(Exception):
    """A failure worth retrying (a storage hiccup); the task retries a bounded number of times."""


class StageError(Exception):
    """A stage could not finish the job (input deleted, sandbox crashed, a pass failed); `code`
    lands in the job's error."""

    def __init__(self, code: str, message: str, *, trace: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trace = trace  # the traceback of an internal_error in the sandbox child


class JobCanceled(Exception):
    """The job was canceled (or finished elsewhere) while this worker ran it."""


@dataclass(frozen=True)
class ModelRef:
    """A stored model as a stage needs it, read once so no session stays open during the work."""

    id: str
    name: str
    storage_key: str
    packaging: str
    sha256: str


@dataclass(frozen=True)
class DatasetRef:
    id: str
    storage_key: str


def claim(job_id: str, *, handoff_stage: str | None = None) -> JobTable | None:
    """Take a job for this worker and return it detached; None when there is nothing to do.

    A queued job becomes running. A running job is taken over only when its lease (heartbeat)
    has expired, or when the previous stage handed it over at `handoff_stage`.
    """
    settings = get_settings()
    with session_scope() as session:
        job = repository.get_for_worker(session, job_id)
        if job is None:
            log.warning("job %s does not exist; dropping its task", job_id)
            return None
        status, now = JobStatus(job.status), utcnow()
        if status == JobStatus.QUEUED:
            taken = repository.transition(
                session, job_id, JobStatus.QUEUED, JobStatus.RUNNING,
                started_at=job.started_at or now, heartbeat_at=now, attempts=job.attempts + 1,
                stage="starting",
            )  # fmt: skip
        elif status == JobStatus.RUNNING:
            stale_before = now - timedelta(seconds=settings.heartbeat_timeout_s)
            taken = repository.reclaim_running(
                session, job_id, stale_before=stale_before, handoff_stage=handoff_stage
            )
        else:
            taken = False
        if not taken:
            log.info("job %s is %s and not ours to run; leaving it", job_id, status)
            return None
        session.refresh(job)
        session.expunge(job)
        bind_job_context(tenant_id=job.tenant_id, kind=job.kind)
        events.info("job_started", status_was=status.value, attempt=job.attempts, stage=job.stage)
        return job


@contextmanager
def keep_alive(job_id: str) -> Iterator[None]:
    """Renew the job's lease in the background while a long stage runs."""
    stop = threading.Event()
    interval = get_settings().heartbeat_interval_s

    def beat() -> None:
        while not stop.wait(interval):
            try:
                with session_scope() as session:
                    repository.touch(session, job_id)
            except Exception:
                log.warning("heartbeat of job %s failed", job_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def progress(job_id: str, stage: str, fraction: float) -> None:
    """Record the stage reached; raises JobCanceled when the job is no longer running."""
    bind_job_context(stage=stage)
    with session_scope() as session:
        if not repository.report_progress(session, job_id, stage, fraction):
            raise JobCanceled(job_id)


def fail_in(
    session: Session, job_id: str, code: str, message: str, *, trace: str | None = None
) -> None:
    kept: dict[str, Any] = {}
    if trace is not None:
        # Kept for operators in the stored report; the public error says only what happened.
        job = repository.get_for_worker(session, job_id)
        kept["report"] = {**((job.report if job else None) or {}), code: {"traceback": trace}}
    failed = repository.transition(
        session, job_id, JobStatus.RUNNING, JobStatus.FAILED,
        error={"code": code, "message": message[:2000]}, finished_at=utcnow(), stage="failed",
        **kept,
    )  # fmt: skip
    if failed:
        events.warning("job_failed", job_id=job_id, code=code, message=message, traceback=trace)
    elif trace is not None:
        # The job ended elsewhere meanwhile (canceled): the error is still worth a line.
        events.warning("job_error_after_end", job_id=job_id, code=code, traceback=trace)


def fail(job_id: str, code: str, message: str, *, trace: str | None = None) -> None:
    """Record a failure; a job that is no longer running is left as it is."""
    with session_scope() as session:
        fail_in(session, job_id, code, message, trace=trace)


def log_stage_end(job_id: str) -> None:
    """Log where a stage left the job: finished (with its status) or handed to the next stage."""
    with session_scope() as session:
        job = repository.get_for_worker(session, job_id)
        if job is None:
            return
        if job.status == JobStatus.SUCCEEDED:
            took = job.finished_at - job.started_at if job.finished_at and job.started_at else None
            events.info("job_succeeded", job_id=job_id, duration_s=took and took.total_seconds())
        elif job.status == JobStatus.RUNNING:
            events.info("job_stage_done", job_id=job_id, stage=job.stage)


def hand_back(job_id: str) -> bool:
    """Put a running job back in the queue for its task's retry to claim (a running job with a
    live lease is not ours to take); False if it no longer runs here (canceled meanwhile).

    It counts as sent now: the retry is on its way, and the outbox resends it only if that
    message is lost."""
    with session_scope() as session:
        return repository.transition(
            session, job_id, JobStatus.RUNNING, JobStatus.QUEUED,
            stage="retrying", heartbeat_at=None, enqueued_at=utcnow(),
        )  # fmt: skip


def fetch_model(storage: Storage, key: str, packaging: str, folder: Path) -> Path:
    """Download a stored model into `folder` (unpacking a zip safely); the .onnx path."""
    folder.mkdir(parents=True, exist_ok=True)
    if packaging != "zip":
        path = folder / "model.onnx"
        storage.download_to(key, path)
        return path
    packed = folder / "model.zip"
    storage.download_to(key, packed)
    limit = 4 * get_settings().max_upload_bytes
    return archive.extract_model_archive(packed, folder / "unpacked", limit)


def package_output(model_path: Path) -> tuple[Path, str]:
    """(file to store, packaging): the model itself, or a zip when it has external data."""
    if len(archive.model_files(model_path)) == 1:
        return model_path, "onnx"
    packed = model_path.with_name(f"{model_path.stem}.zip")
    archive.pack_model(model_path, packed)
    return packed, "zip"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def failures_end_the_job(job_id: str, *, final_attempt: bool, time_limit_s: int) -> Iterator[None]:
    """Turn whatever a stage raises into the job's outcome; transient errors retry first."""
    try:
        yield
    except JobCanceled:
        log.info("job %s was canceled while running", job_id)
    except SoftTimeLimitExceeded:
        fail(job_id, "timeout", f"the job ran past its limit of {time_limit_s} s")
    except StageError as exc:
        fail(job_id, exc.code, exc.message, trace=exc.trace)
    except PassError as exc:
        fail(job_id, exc.code, exc.message)
    except InvalidModelError as exc:
        fail(job_id, "invalid_output", f"a pass produced an invalid model: {exc}")
    except BrokerError as exc:
        # A Celery retry needs the broker too. Leave the job to its lease instead: once the
        # heartbeat is stale, the reaper requeues it (through the outbox if still needed).
        log.warning(
            "job %s could not reach the broker (%s); the reaper will resume it", job_id, exc
        )
        with session_scope() as session:
            repository.report_progress(session, job_id, "waiting_for_broker", 0.8)
    except StorageError as exc:
        if final_attempt:
            fail(job_id, "storage_unavailable", str(exc))
        elif hand_back(job_id):
            log.warning("job %s: storage failed (%s); it will be retried", job_id, exc)
            raise TransientJobError(str(exc)) from exc
    except Exception as exc:
        fail(
            job_id, "internal_error", f"{type(exc).__name__}: {exc}",
            trace=traceback.format_exc(),
        )  # fmt: skip


@contextmanager
def working_on(job_id: str, *, final_attempt: bool, time_limit_s: int) -> Iterator[None]:
    """The frame of every stage: the job's lease renewed, and any failure ending the job."""
    with (
        failures_end_the_job(job_id, final_attempt=final_attempt, time_limit_s=time_limit_s),
        keep_alive(job_id),
    ):
        yield
    log_stage_end(job_id)
