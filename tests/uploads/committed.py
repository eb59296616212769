"""The app in-process with real commits: for what happens after a commit (a freed object is
deleted by a transaction of its own, which must see the committed rows)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.db import session_scope
from app.settings import Settings
from app.storage import LocalStorage
from tests.conftest import issue_key


@pytest.fixture
def committed_storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "committed-storage")


@pytest.fixture
def committed_api(database_url: str, committed_storage: LocalStorage) -> Iterator[Any]:
    """Requests of a tenant of the test's own, each committed like in production."""
    from fastapi.testclient import TestClient

    from app.main import app
    from app.settings import get_settings
    from app.storage import get_storage

    with session_scope() as session:
        secret = issue_key(session, f"committed-{uuid.uuid4().hex[:12]}")
    app.dependency_overrides[get_storage] = lambda: committed_storage
    app.dependency_overrides[get_settings] = lambda: Settings(max_upload_bytes=16 * 1024 * 1024)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {secret}"
        yield client
    app.dependency_overrides.clear()
