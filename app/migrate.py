"""Apply the Alembic migrations from code (the embedded `modelpress serve` and tests use it)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from app.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    # From code, the process's own logging setup stands (alembic.ini's would replace it).
    config.attributes["configure_logger"] = False
    # configparser treats % as interpolation: escape it so URL-encoded passwords survive.
    url = database_url or get_settings().database_url
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_head(database_url: str | None = None) -> None:
    """Bring the database to the newest schema."""
    url = database_url or get_settings().database_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")
