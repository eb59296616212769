"""The migrations create exactly what the tables declare, on Postgres and on SQLite."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.datasets import tables as _datasets  # noqa: F401
from app.db import Base
from app.idempotency import tables as _idempotency  # noqa: F401
from app.jobs import tables as _jobs  # noqa: F401
from app.migrate import alembic_config, upgrade_head
from app.onnx_models import tables as _models  # noqa: F401


def test_postgres_schema_matches_the_tables(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()

    assert diff == [], f"tables and migrations disagree; add a migration: {diff}"


def test_migrations_build_the_embedded_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"

    upgrade_head(url)

    engine = create_engine(url)
    assert {"models", "jobs", "datasets", "alembic_version"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()


def test_every_migration_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    upgrade_head(url)

    command.downgrade(alembic_config(url), "base")
    upgrade_head(url)

    engine = create_engine(url)
    assert "datasets" in inspect(engine).get_table_names()
    engine.dispose()
