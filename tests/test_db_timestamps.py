"""Timestamps come back from the database timezone-aware and in UTC, on SQLite as on Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import make_engine
from app.migrate import upgrade_head
from app.tenants.tables import ApiKeyTable, TenantTable


@pytest.fixture(params=["sqlite", "postgres"])
def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("database_url"))
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    upgrade_head(url)
    return url


def test_timestamps_read_back_aware_in_utc(engine_url: str) -> None:
    engine = make_engine(engine_url)
    two_hours_east = timezone(timedelta(hours=2))
    revoked = datetime(2030, 5, 1, 14, 30, tzinfo=two_hours_east)
    # Rolled back at the end: the shared Postgres test database keeps no row of this test.
    with Session(engine) as session, session.begin():
        tenant = TenantTable(name="clock")
        session.add(tenant)
        session.flush()
        key = ApiKeyTable(
            tenant_id=tenant.id, name="k", prefix="p", key_hash=tenant.id, revoked_at=revoked
        )
        session.add(key)
        session.flush()
        session.expire_all()  # the values below come from the database, not from memory

        created = session.scalars(select(TenantTable.created_at).filter_by(id=tenant.id)).one()
        stored = session.get(ApiKeyTable, key.id)
        assert stored is not None and stored.revoked_at is not None
        assert created.tzinfo is not None and created.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - created) < timedelta(minutes=5)
        assert stored.revoked_at == revoked and stored.revoked_at.utcoffset() == timedelta(0)
        # Comparisons with a bound timestamp hold whatever its offset.
        found = session.scalars(
            select(ApiKeyTable.id).where(
                ApiKeyTable.revoked_at > datetime(2030, 5, 1, 12, 29, tzinfo=UTC),
                ApiKeyTable.revoked_at < datetime(2030, 5, 1, 14, 31, tzinfo=two_hours_east),
            )
        ).all()
        assert found == [key.id]
        session.rollback()
    engine.dispose()
