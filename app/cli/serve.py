"""`modelpress serve`: migrations, a Celery worker subprocess and uvicorn in one command.

Only imported when that subcommand runs, so the client commands never load the server stack.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import uvicorn

from app.migrate import upgrade_head
from app.settings import get_settings

WORKER_STOP_TIMEOUT_S = 15.0


def worker_command(*queue_names: str) -> list[str]:
    """The argv of the embedded Celery worker: one process, so benchmarks never overlap."""
    return [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "--pool=solo", "--loglevel=INFO", "-Q", ",".join(queue_names),
    ]  # fmt: skip


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """Ask the worker to finish (SIGTERM is Celery's warm shutdown), kill it if it hangs."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=WORKER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stop_when_worker_dies(worker: subprocess.Popen[bytes]) -> None:
    # Without its worker the service would accept jobs that never run: stop loudly instead.
    code = worker.wait()
    if not _stopping.is_set():
        print(f"the Celery worker exited with code {code}; stopping the server", file=sys.stderr)
        os.kill(os.getpid(), signal.SIGTERM)


_stopping = threading.Event()


def serve(host: str, port: int) -> int:
    """Run the embedded stack until uvicorn exits or Ctrl-C; returns the exit code."""
    settings = get_settings()
    # The SQLite database and broker live in data_dir, so it must exist before migrating.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_head()

    worker = subprocess.Popen(
        worker_command(settings.queue_name, settings.benchmark_queue_name), env=os.environ.copy()
    )
    threading.Thread(target=_stop_when_worker_dies, args=(worker,), daemon=True).start()
    try:
        print(f"ModelPress is running: open http://{host}:{port}/ to compress a model", flush=True)
        # uvicorn handles SIGINT/SIGTERM itself and returns; finally then stops the worker.
        uvicorn.run("app.main:app", host=host, port=port)
    except KeyboardInterrupt:
        pass
    finally:
        _stopping.set()
        stop_worker(worker)
    return 0
