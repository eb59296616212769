"""Shared fixtures: a migrated Postgres database, rolled-back sessions, S3 over HTTP, storage."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_ADMIN_URL = os.environ.get("MODELPRESS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
TEST_DB = f"modelpress_test_{os.getpid()}"
REDIS_URL = os.environ.get("MODELPRESS_TEST_REDIS", "redis://127.0.0.1:6379/15")

# Settings are read once per process: point them at the test services before app is imported.
os.environ["MODELPRESS_DATABASE_URL"] = f"{PG_ADMIN_URL}/{TEST_DB}"
os.environ["MODELPRESS_BROKER_URL"] = REDIS_URL
os.environ["MODELPRESS_QUEUE_NAME"] = f"modelpress-test-{os.getpid()}"
os.environ["MODELPRESS_BENCHMARK_QUEUE_NAME"] = f"modelpress-test-benchmark-{os.getpid()}"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from app.migrate import upgrade_head  # noqa: E402
from app.storage import LocalStorage, S3Storage, Storage  # noqa: E402
from app.tenants.tables import DEFAULT_TENANT  # noqa: E402
from tests.stack import LiveStack, free_port  # noqa: E402


def wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout_s} s")


def _admin(sql: str) -> None:
    engine = create_engine(f"{PG_ADMIN_URL}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def _clean_test_queues() -> Iterator[None]:
    """Drop what this run left in the test broker database."""
    yield
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"*modelpress-*-{os.getpid()}*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database of this test run's own, migrated with Alembic once."""
    _admin(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{TEST_DB}"')
    url = f"{PG_ADMIN_URL}/{TEST_DB}"
    upgrade_head(url)
    yield url
    from app.db import get_engine

    get_engine().dispose()
    _admin(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')


@pytest.fixture
def db_session(database_url: str) -> Iterator[Session]:
    """A session whose every change, commits included, is rolled back after the test."""
    engine = create_engine(database_url)
    connection = engine.connect()
    outer = connection.begin()
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield session
    session.close()
    outer.rollback()
    connection.close()
    engine.dispose()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's standalone S3-compatible server, spoken to over HTTP like any S3 endpoint."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def make_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Each storage backend in turn: a local folder, and S3 over HTTP."""
    if request.param == "local":
        return LocalStorage(tmp_path / "storage")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"test-{request.node.name.lower().replace('[', '-').replace(']', '')}"[:60]
    make_bucket(endpoint, bucket)
    return S3Storage(bucket=bucket, prefix="models", endpoint_url=endpoint, region="us-east-1")


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> Iterator[LiveStack]:
    """API and worker processes on Postgres, Redis and S3 over HTTP, with their own database."""
    live_db = f"{TEST_DB}_live"
    _admin(f'DROP DATABASE IF EXISTS "{live_db}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{live_db}"')
    upgrade_head(f"{PG_ADMIN_URL}/{live_db}")
    make_bucket(s3_endpoint, "modelpress-live")
    env = {
        **os.environ,
        "MODELPRESS_DATABASE_URL": f"{PG_ADMIN_URL}/{live_db}",
        "MODELPRESS_STORAGE_URL": "s3://modelpress-live/models",
        "MODELPRESS_S3_ENDPOINT_URL": s3_endpoint,
        "MODELPRESS_QUEUE_NAME": f"modelpress-live-{os.getpid()}",
        "MODELPRESS_BENCHMARK_QUEUE_NAME": f"modelpress-live-benchmark-{os.getpid()}",
        "MODELPRESS_MAX_UPLOAD_BYTES": str(32 * 1024 * 1024),
        "MODELPRESS_BENCHMARK_RUNS": "20",
        "MODELPRESS_EXTRA_PASS_MODULES": "tests.fault_passes",
        "MODELPRESS_JOB_MEMORY_LIMIT_MB": "2048",
        # Short leases so the fault tests see a lost worker's job requeued within seconds.
        "MODELPRESS_HEARTBEAT_INTERVAL_S": "1",
        "MODELPRESS_HEARTBEAT_TIMEOUT_S": "5",
        "MODELPRESS_REAPER_INTERVAL_S": "1",
        "MODELPRESS_QUEUED_RESEND_AFTER_S": "8",
    }
    stack = LiveStack(env=env, log_dir=tmp_path_factory.mktemp("live-logs"), port=free_port())
    try:
        stack.start_api()
        stack.start_worker()
        stack.api_key = stack.admin("create-key", stack.admin("create-tenant", "live")["id"])["key"]
        yield stack
    finally:
        stack.stop()
        _admin(f'DROP DATABASE IF EXISTS "{live_db}" WITH (FORCE)')


@pytest.fixture
def api_storage(tmp_path: Path) -> Storage:
    return LocalStorage(tmp_path / "api-storage")


@pytest.fixture
def api(db_session: Session, api_storage: Storage) -> Iterator[Any]:
    """The app in-process, on the rolled-back session and a storage folder of the test's own."""
    from fastapi.testclient import TestClient

    from app.deps import get_session
    from app.main import app
    from app.settings import Settings, get_settings
    from app.storage import get_storage

    def _session() -> Iterator[Session]:
        # Like the real unit of work, but its commit only releases a savepoint of the test.
        try:
            yield db_session
            db_session.commit()
        except BaseException:
            db_session.rollback()
            raise

    app.dependency_overrides[get_session] = _session
    app.dependency_overrides[get_storage] = lambda: api_storage
    app.dependency_overrides[get_settings] = lambda: Settings(max_upload_bytes=16 * 1024 * 1024)
    with TestClient(app, raise_server_exceptions=False) as client:
        # Requests act as the "default" tenant that the row factories use, with a real key.
        client.headers["Authorization"] = f"Bearer {issue_key(db_session, DEFAULT_TENANT)}"
        yield client
    app.dependency_overrides.clear()


def issue_key(session: Session, tenant_id: str) -> str:
    """A working API key for a tenant (created if missing), as `modelpress admin` would make."""
    from app.tenants import service
    from app.tenants.tables import TenantTable

    if session.get(TenantTable, tenant_id) is None:
        session.add(TenantTable(id=tenant_id, name=tenant_id))
        session.flush()
    secret = service.create_key(session, tenant_id=tenant_id).secret
    session.commit()  # releases a savepoint only: the test's outer transaction still rolls back
    return secret
