"""The jobs table: the source of truth for every job's state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin, UTCDateTime
from app.jobs.lifecycle import JobKind, JobStatus
from app.tenants.tables import DEFAULT_TENANT


class JobTable(IdMixin, Base):
    __tablename__ = "jobs"

    tenant_id: Mapped[str] = mapped_column(
        String(64), index=True, default=DEFAULT_TENANT, server_default=text(f"'{DEFAULT_TENANT}'")
    )
    model_id: Mapped[str | None] = mapped_column(
        ForeignKey("models.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), index=True, default=JobStatus.QUEUED.value)
    stage: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    preset: Mapped[str | None] = mapped_column(String(64))
    recipe: Mapped[dict[str, Any]]
    input_shapes: Mapped[dict[str, Any] | None]
    # Constant inputs given in JSON ({"sr": 16000}), fed with every sample.
    input_values: Mapped[dict[str, Any] | None]
    benchmark_options: Mapped[dict[str, Any]]
    calibration_dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL")
    )
    eval_dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL")
    )
    # "compress": passes, then a benchmark of output vs input; "benchmark": measure model_id alone
    # or against baseline_model_id.
    kind: Mapped[str] = mapped_column(
        String(16),
        default=JobKind.COMPRESS.value,
        server_default=text(f"'{JobKind.COMPRESS.value}'"),
    )
    baseline_model_id: Mapped[str | None] = mapped_column(
        ForeignKey("models.id", ondelete="SET NULL")
    )
    error: Mapped[dict[str, Any] | None]
    metrics: Mapped[dict[str, Any] | None]
    report: Mapped[dict[str, Any] | None]
    output_model_id: Mapped[str | None] = mapped_column(
        ForeignKey("models.id", ondelete="SET NULL")
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when the task reached the broker; NULL means it still has to be sent (outbox).
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # An auto job's candidates point at it; deleting the parent deletes them.
    parent_job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    objective: Mapped[dict[str, Any] | None]  # an Objective
    verdict: Mapped[str | None] = mapped_column(String(16))  # a Verdict
    verdict_detail: Mapped[dict[str, Any] | None]  # a Judgement
    recommendation_reason: Mapped[str | None] = mapped_column(String(64))
    # Where the job's events are POSTed (app.webhooks), and which of them ("start", "completed").
    webhook: Mapped[str | None] = mapped_column(String(2048))
    webhook_events_filter: Mapped[list[Any] | None]
    # Touched by the worker while it runs the job: a stale heartbeat means a vanished worker.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
