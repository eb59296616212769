"""The models table: one row per stored ONNX model, uploaded or produced by a job."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin
from app.tenants.tables import DEFAULT_TENANT


class ModelTable(IdMixin, Base):
    __tablename__ = "models"

    tenant_id: Mapped[str] = mapped_column(
        String(64), index=True, default=DEFAULT_TENANT, server_default=text(f"'{DEFAULT_TENANT}'")
    )
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(512), index=True)
    format: Mapped[str] = mapped_column(String(16), default="onnx")
    # "onnx": one file; "zip": the .onnx with its external-data files, as uploaded or produced.
    packaging: Mapped[str] = mapped_column(String(8), default="onnx", server_default=text("'onnx'"))
    ir_version: Mapped[int] = mapped_column(Integer)
    opset: Mapped[int] = mapped_column(Integer)
    producer: Mapped[str | None] = mapped_column(String(255))
    inputs: Mapped[list[Any]]
    outputs: Mapped[list[Any]]
    op_counts: Mapped[dict[str, Any]]
    param_count: Mapped[int] = mapped_column(BigInteger)
    # Size of the file once zstd-compressed: what `download?encoding=zstd` sends.
    transport_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    analysis: Mapped[dict[str, Any] | None]  # a ModelAnalysis, computed when the model is stored
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("models.id", ondelete="SET NULL"), index=True
    )
    # The job that produced this model. A plain column, not a foreign key: jobs already points
    # at models, and job rows are never deleted, so the cycle would buy nothing.
    job_id: Mapped[str | None] = mapped_column(String(36), index=True)
