"""`modelpress serve`: migrations, Celery worker subprocesses (jobs; webhooks) and uvicorn in one
command.

Only imported when that subcommand runs, so the client commands never load the server stack.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import threading
from types import FrameType

import psutil
import uvicorn

from app.migrate import upgrade_head
from app.observability.logging import configure_logging
from app.settings import get_settings

WORKER_STOP_TIMEOUT_S = 15.0
LEFTOVER_STOP_TIMEOUT_S = 5.0
EXIT_REFUSED = 2
WEBHOOK_THREADS = 4


def worker_command(*queue_names: str) -> list[str]:
    """The argv of the embedded Celery worker: one process, so benchmarks never overlap."""
    return [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "--pool=solo", "--loglevel=INFO", "-Q", ",".join(queue_names),
    ]  # fmt: skip


def webhook_worker_command(queue_name: str) -> list[str]:
    """The argv of the embedded webhooks worker: threads, so a slow receiver holds up no other
    delivery, and no job ever holds up a delivery."""
    return [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "--pool=threads", f"--concurrency={WEBHOOK_THREADS}", "--loglevel=INFO",
        "-Q", queue_name, "-n", "webhooks@%h",
    ]  # fmt: skip


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server to this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[] ")).is_loopback
    except ValueError:
        return False  # a host name (or 0.0.0.0-style wildcard): it may be reachable from outside


def unsafe_bind_reason(host: str, *, auth_enabled: bool, allow_no_auth: bool) -> str | None:
    """Why serving on `host` is refused, or None when it is allowed."""
    if auth_enabled or allow_no_auth or is_loopback(host):
        return None
    return (
        f"refusing to serve on {host} without API keys: anyone who can reach this address could "
        "upload models and run jobs. Keep the default --host 127.0.0.1, or turn keys on "
        "(MODELPRESS_AUTH_REQUIRED=true, then `modelpress admin create-tenant` and `create-key`), "
        "or pass --insecure-no-auth on a network you trust"
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """Stop the worker and every process under it (a pass or benchmark child it was running)."""
    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    if proc.poll() is None:
        proc.terminate()  # Celery's warm shutdown
        try:
            proc.wait(timeout=WORKER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # A child the worker could not stop (it was killed, or hung) must not outlive the server.
    _, alive = psutil.wait_procs(tree, timeout=LEFTOVER_STOP_TIMEOUT_S)
    for leftover in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()
    psutil.wait_procs(alive, timeout=LEFTOVER_STOP_TIMEOUT_S)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (systemd, docker stop, kill) stops the server the way Ctrl-C does, so the
    # `finally` below stops the worker. uvicorn catches SIGTERM while it runs, then raises it
    # again once it has shut down: this handler is what that second SIGTERM reaches.
    raise KeyboardInterrupt


class _WorkerWatch:
    """Stops the server when the worker dies on its own: jobs would otherwise never run."""

    def __init__(self, worker: subprocess.Popen[bytes]) -> None:
        self.worker = worker
        self.stopping = threading.Event()
        self.died = False
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        code = self.worker.wait()
        if not self.stopping.is_set():
            self.died = True
            print(f"the Celery worker exited with code {code}; stopping", file=sys.stderr)
            os.kill(os.getpid(), signal.SIGTERM)


def serve(host: str, port: int, *, allow_no_auth: bool = False) -> int:
    """Run the embedded stack until uvicorn exits, Ctrl-C or SIGTERM; returns the exit code."""
    settings = get_settings()
    reason = unsafe_bind_reason(
        host, auth_enabled=settings.auth_enabled, allow_no_auth=allow_no_auth
    )
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return EXIT_REFUSED
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # Readable lines in the terminal unless MODELPRESS_LOG_FORMAT says otherwise, here and in
    # the worker.
    configure_logging("console")
    worker_env = {**os.environ, "MODELPRESS_LOG_FORMAT": settings.log_format or "console"}
    watch: _WorkerWatch | None = None
    webhook_watch: _WorkerWatch | None = None
    try:
        # The SQLite database and broker live in data_dir, so it must exist before migrating.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade_head()
        worker = subprocess.Popen(
            worker_command(settings.queue_name, settings.benchmark_queue_name),
            env=worker_env,
        )
        watch = _WorkerWatch(worker)
        webhook_watch = _WorkerWatch(
            subprocess.Popen(webhook_worker_command(settings.webhook_queue_name), env=worker_env)
        )
        print(f"ModelPress is running: open http://{host}:{port}/ to compress a model", flush=True)
        # uvicorn handles SIGINT/SIGTERM itself and returns (or re-raises them, see above).
        uvicorn.run("app.main:app", host=host, port=port, log_config=None)
    except KeyboardInterrupt:
        pass
    finally:
        watches = [w for w in (watch, webhook_watch) if w is not None]
        for each in watches:
            each.stopping.set()
        for each in watches:
            stop_worker(each.worker)
    return 1 if any(w.died for w in watches) else 0
