"""A stack of a test's own (API and worker), for faults the shared live stack must not see."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import PG_ADMIN_URL, TEST_DB, _admin, free_port, make_bucket
from tests.stack import ROOT, LiveStack


@contextmanager
def private_stack(
    live_stack: LiveStack,
    name: str,
    log_dir: Path,
    *,
    concurrency: int = 1,
    webhook_worker: bool = False,
    **env: str,
) -> Iterator[LiveStack]:
    """Its own database, bucket and queues; the live stack's services and settings otherwise,
    with `env` on top (e.g. another broker or S3 endpoint). With `webhook_worker`, webhooks are
    delivered by a worker of their own, as deployed, instead of the jobs worker."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    slug = f"{re.sub(r'[^a-z0-9]+', '-', name.lower())[:30].strip('-')}-{digest}"
    database = f"{TEST_DB}_{slug.replace('-', '_')}"
    _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{database}"')
    make_bucket(live_stack.env["MODELPRESS_S3_ENDPOINT_URL"], slug)
    full_env = {
        **live_stack.env,
        "MODELPRESS_DATABASE_URL": f"{PG_ADMIN_URL}/{database}",
        "MODELPRESS_STORAGE_URL": f"s3://{slug}/models",
        "MODELPRESS_QUEUE_NAME": f"modelpress-{slug}-{os.getpid()}",
        "MODELPRESS_BENCHMARK_QUEUE_NAME": f"modelpress-{slug}-benchmark-{os.getpid()}",
        **env,
    }
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], env=full_env,
                   check=True, capture_output=True, cwd=ROOT)  # fmt: skip
    stack = LiveStack(env=full_env, log_dir=log_dir, port=free_port())
    try:
        stack.start_api()
        stack.start_worker(concurrency=concurrency, webhooks=not webhook_worker)
        if webhook_worker:
            stack.start_webhook_worker()
        stack.api_key = stack.admin("create-key", stack.admin("create-tenant", slug)["id"])["key"]
        yield stack
    finally:
        stack.stop()
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
