"""`modelpress worker`: run a Celery worker, and start it again whenever it exits on its own.

A Celery worker can stop on an error it does not recover from (a broker bug, a failed
bootstep); without a worker, new jobs would wait in the queue until someone restarted it. This
supervisor restarts it after a short, growing delay. SIGTERM or SIGINT stop the worker the usual
way (Celery's warm shutdown lets running jobs finish) and then the supervisor itself.

Jobs never depend on the restart: a job whose worker vanished is requeued by the reaper of any
live worker once its lease expires.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from types import FrameType

FIRST_RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 30.0
# A worker that ran this long before exiting was healthy: its restart starts the delays afresh.
HEALTHY_RUN_S = 60.0
# How `celery worker` exits on options it refuses or an app it cannot load (click's usage
# error, sysexits' EX_USAGE): restarting would only repeat the mistake.
REFUSED_EXIT_CODES = frozenset({2, 64})


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = sub.add_parser(
        "worker",
        help="run a Celery worker that is restarted whenever it exits on its own",
        description="Options after `--` go to `celery worker`, e.g. "
        "`modelpress worker -- -Q modelpress --concurrency=2`.",
    )
    worker.add_argument(
        "--restart-delay",
        type=float,
        default=FIRST_RESTART_DELAY_S,
        metavar="SECONDS",
        help="wait before the first restart; doubles on each quick exit up to "
        f"{MAX_RESTART_DELAY_S:.0f} s (default %(default)s)",
    )
    worker.add_argument("celery_args", nargs="*", help="options for `celery worker`, after --")


def run(args: argparse.Namespace) -> int:
    """Supervise `celery worker` until told to stop; returns the worker's last exit code."""
    return Supervisor(celery_worker_argv(args.celery_args), args.restart_delay).run()


def celery_worker_argv(celery_args: list[str]) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", *celery_args]


def _say(message: str) -> None:
    print(f"modelpress worker: {message}", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(self, argv: list[str], first_delay_s: float = FIRST_RESTART_DELAY_S) -> None:
        self.argv = argv
        self.first_delay_s = first_delay_s
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            # SIGTERM is Celery's warm shutdown. A Ctrl-C also reached the worker itself (same
            # process group); a SIGTERM on top of its SIGINT is still a warm shutdown, where a
            # second SIGINT would have been a cold one.
            self.child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        delay = self.first_delay_s
        while True:
            started = time.monotonic()
            self.child = subprocess.Popen(self.argv)
            code = self.child.wait()
            if self.stopping:
                return code if code >= 0 else 128 - code
            if code in REFUSED_EXIT_CODES:
                _say(f"the Celery worker refused to start (exit code {code}); not restarting it")
                return code
            if time.monotonic() - started >= HEALTHY_RUN_S:
                delay = self.first_delay_s
            _say(f"the Celery worker exited with code {code}; starting it again in {delay:g} s")
            self._sleep(delay)
            if self.stopping:
                return 0
            delay = min(delay * 2, MAX_RESTART_DELAY_S)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(0.1)
