"""All SQL on tenants and API keys; `tenant_id` is keyword-only, as in every repository.

Keys are found by digest or revoked by id across tenants: that is `modelpress admin`'s and the
authentication's work, which runs before any tenant is known.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.tenants.tables import ApiKeyTable, TenantTable


def add_tenant(session: Session, tenant: TenantTable) -> TenantTable:
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, *, tenant_id: str) -> TenantTable | None:
    return session.get(TenantTable, tenant_id)


def add_key(session: Session, key: ApiKeyTable) -> ApiKeyTable:
    session.add(key)
    session.flush()
    return key


def active_key_by_hash(session: Session, key_hash: str) -> ApiKeyTable | None:
    return session.scalar(
        select(ApiKeyTable).where(
            ApiKeyTable.key_hash == key_hash, ApiKeyTable.revoked_at.is_(None)
        )
    )


def revoke_key(session: Session, key_id: str, at: datetime) -> bool:
    result = session.execute(
        update(ApiKeyTable)
        .where(ApiKeyTable.id == key_id, ApiKeyTable.revoked_at.is_(None))
        .values(revoked_at=at)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def lock_for_update(session: Session, *, tenant_id: str) -> None:
    """Serialize writers on one tenant until the transaction ends (for its limits' checks).

    Postgres: an advisory transaction lock on the id (no tenant row is needed: the default
    tenant has none while keys are off). SQLite has one writer at a time: an UPDATE, even of no
    row, opens the write transaction now, so the next writer waits here rather than counting
    before this one commits.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(tenant_id))))
        return
    session.execute(
        update(TenantTable).where(TenantTable.id == tenant_id).values(name=TenantTable.name)
    )
