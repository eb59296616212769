"""The uploads table: one row per direct upload, from its presigned URL to its model."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin


class UploadStatus(StrEnum):
    PENDING = "pending"  # the client may PUT (or complete its parts)
    USED = "used"  # registered as a model: its staged object was moved into place
    FAILED = "failed"  # registering it failed: its staged object was deleted


class UploadTable(IdMixin, Base):
    __tablename__ = "uploads"

    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # Where the client's bytes land: `uploads/<id>/model.<ext>`, until they are registered.
    staging_key: Mapped[str] = mapped_column(String(512))
    # S3's id of a multipart upload; None for a single PUT.
    multipart_id: Mapped[str | None] = mapped_column(String(1024))
    part_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # SHA-256 of the token in the URL of a PUT to the API itself (local storage); the token
    # itself is only ever in the client's URL.
    token_sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=UploadStatus.PENDING.value)
    completed: Mapped[bool] = mapped_column(default=False)  # a multipart upload's parts joined
    expires_at: Mapped[datetime] = mapped_column(index=True)
    model_id: Mapped[str | None] = mapped_column(String(36))
