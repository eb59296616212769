"""The tenants and api_keys tables. Keys are stored only as a SHA-256 digest."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin, UTCDateTime

# The tenant of rows made before tenants existed, and of every request while API keys are off.
DEFAULT_TENANT = "default"


class TenantTable(IdMixin, Base):
    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(255))


class ApiKeyTable(IdMixin, Base):
    __tablename__ = "api_keys"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    # The first characters of the key, so a person can tell keys apart without the secret.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
