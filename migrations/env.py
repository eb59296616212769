"""Alembic environment: the database URL comes from settings unless the caller set one."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool

from app.datasets import tables as _datasets_tables  # noqa: F401 - registers the table
from app.db import Base
from app.idempotency import tables as _idempotency_tables  # noqa: F401 - registers the table
from app.jobs import tables as _jobs_tables  # noqa: F401 - registers the table
from app.onnx_models import tables as _models_tables  # noqa: F401 - registers the table
from app.settings import get_settings
from app.tenants import tables as _tenants_tables  # noqa: F401 - registers the table
from app.uploads import tables as _uploads_tables  # noqa: F401 - registers the table
from app.webhooks import tables as _webhooks_tables  # noqa: F401 - registers the table

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if not config.get_main_option("sqlalchemy.url"):
    config.set_main_option("sqlalchemy.url", get_settings().database_url.replace("%", "%%"))

target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        # Batch mode lets the same migrations alter tables on SQLite (the embedded default).
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
