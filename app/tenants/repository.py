"""All SQL on tenants and API keys; `tenant_id` is keyword-only, as in every repository.

Keys are found by digest or revoked by id across tenants: that is `modelpress admin`'s and the
authentication's work, which runs before any tenant is known.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
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
