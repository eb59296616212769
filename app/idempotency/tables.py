"""The idempotency_keys table: one row per tenant and key, the first response once it is known."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin, UTCDateTime


class IdempotencyKeyTable(IdMixin, Base):
    __tablename__ = "idempotency_keys"
    # The constraint is the lock: of concurrent requests with one key, one INSERT wins.
    __table_args__ = (
        UniqueConstraint("tenant_id", "key", name="uq_idempotency_keys_tenant_key"),
        Index("ix_idempotency_keys_created_at", "created_at"),  # the expiry sweep
    )

    tenant_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    method_path: Mapped[str] = mapped_column(String(300))
    # NULL until the first request has its answer: the key is then "in flight".
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
