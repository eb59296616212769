"""`modelpress worker`: it restarts the Celery worker that exits on its own (see
tests/test_faults.py), stops it cleanly when told to, and does not loop on bad options."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.stack import ROOT


def _supervisor(log: Path, *celery_args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "worker", "--", *celery_args],
        cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_sigterm_stops_the_celery_worker_then_the_supervisor(
    database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    queue = f"modelpress-supervisor-{os.getpid()}"
    supervisor = _supervisor(
        log, "--pool=solo", "--loglevel=INFO", "-Q", queue, "-n", f"{queue}@%h"
    )
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline and supervisor.poll() is None, log.read_text()
            time.sleep(0.2)
        worker = psutil.Process(supervisor.pid).children()[0]

        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(timeout=30)

        assert code == 0, log.read_text()
        assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
        assert "Warm shutdown" in log.read_text()
    finally:
        supervisor.kill()


def test_a_worker_that_refuses_its_options_is_not_restarted(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"

    code = _supervisor(log, "--no-such-option").wait(timeout=60)

    assert code == 2
    assert "not restarting it" in log.read_text()
