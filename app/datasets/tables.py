"""The datasets table: one row per uploaded `.npz`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin
from app.tenants.tables import DEFAULT_TENANT


class DatasetTable(IdMixin, Base):
    __tablename__ = "datasets"

    tenant_id: Mapped[str] = mapped_column(
        String(64), index=True, default=DEFAULT_TENANT, server_default=text(f"'{DEFAULT_TENANT}'")
    )
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(512), index=True)
    num_samples: Mapped[int] = mapped_column(Integer)
    arrays: Mapped[dict[str, Any]]
    has_labels: Mapped[bool] = mapped_column(Boolean)
