"""Helpers to run `modelpress serve` (the embedded default) and the CLI as processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.stack import ROOT

CLI = [sys.executable, "-m", "app.cli.main"]


def embedded_env(data_dir: Path) -> dict[str, str]:
    # Only the data folder is set: everything else falls back to the embedded defaults.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPRESS_")}
    env["MODELPRESS_DATA_DIR"] = str(data_dir)
    env["MODELPRESS_BENCHMARK_RUNS"] = "5"
    return env


def serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """Start `modelpress serve` on data_dir and wait until it is ready."""
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)], cwd=ROOT, env=embedded_env(data_dir),
        stdout=(data_dir.parent / "serve.log").open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise TimeoutError((data_dir.parent / "serve.log").read_text()[-4000:])


def stop_with_sigterm(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """SIGTERM `serve` as systemd or docker would; returns its descendants still alive after."""
    tree = psutil.Process(proc.pid).children(recursive=True)
    assert tree, "serve runs a Celery worker as a child process"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    _, alive = psutil.wait_procs(tree, timeout=5)
    for leftover in alive:  # never leak processes into the rest of the suite
        leftover.kill()
    return alive
