"""The whole service as real processes: uvicorn (API) and a Celery worker, on real services."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveStack:
    env: dict[str, str]
    log_dir: Path
    port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    api_key: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tmp_dir(self) -> Path:
        """The temp folder of the stack's processes (their own, so a test can look inside)."""
        path = self.log_dir / "tmp"
        path.mkdir(exist_ok=True)
        return path

    @property
    def webhook_queue(self) -> str:
        """The queue of webhook deliveries (the settings' default next to the jobs' queue)."""
        return self.env.get("MODELPRESS_WEBHOOK_QUEUE_NAME") or (
            f"{self.env['MODELPRESS_QUEUE_NAME']}-webhooks"
        )

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        # A production-shaped stack, except that webhooks may reach a receiver in the test
        # process on 127.0.0.1 (unless the stack's env says otherwise).
        env = {"MODELPRESS_WEBHOOK_ALLOW_LOOPBACK": "true", **self.env, "TMPDIR": str(self.tmp_dir)}
        # A session of its own, so a test can kill the whole process tree like a crash would.
        self.procs[name] = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def start_api(self) -> None:
        self._spawn(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
        )
        self._wait_ready()

    def start_worker(
        self, concurrency: int = 1, name: str = "worker", webhooks: bool = True
    ) -> None:
        """`modelpress worker`, as deployed: a supervisor that restarts the Celery worker; a
        second `name` starts another worker (another host, as far as Celery can tell). It takes
        webhook deliveries too unless `webhooks` is False (then start_webhook_worker does)."""
        queues = ",".join(
            [
                *(
                    self.env[key]
                    for key in ("MODELPRESS_QUEUE_NAME", "MODELPRESS_BENCHMARK_QUEUE_NAME")
                ),
                *([self.webhook_queue] if webhooks else []),
            ]
        )
        self._spawn(
            name,
            [
                sys.executable, "-m", "app.cli.main", "worker", "--restart-delay", "0.5", "--",
                "--pool=prefork", f"--concurrency={concurrency}", "--loglevel=INFO",
                "-Q", queues, "-n", f"test-{os.getpid()}-{self.port}-{name}@%h",
            ],
        )  # fmt: skip

    def start_webhook_worker(self, name: str = "webhooks") -> None:
        """The webhooks worker, as deployed: threads on the webhooks queue alone."""
        self._spawn(
            name,
            [
                sys.executable, "-m", "app.cli.main", "worker", "--restart-delay", "0.5", "--",
                "--pool=threads", "--concurrency=4", "--loglevel=INFO", "-Q", self.webhook_queue,
                "-n", f"test-{os.getpid()}-{self.port}-{name}@%h",
            ],
        )  # fmt: skip

    def celery_worker_pid(self, timeout_s: float = 30.0) -> int:
        """The Celery worker's main process under the supervisor (it may be restarting)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            children = psutil.Process(self.procs["worker"].pid).children()
            if children:
                return children[0].pid
            time.sleep(0.1)
        raise TimeoutError(f"no Celery worker under the supervisor:\n{self.logs('worker')}")

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.procs["api"].poll() is not None:
                raise RuntimeError(f"the API exited early:\n{self.logs('api')}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the API did not start:\n{self.logs('api')}")

    def admin(self, *args: str) -> Any:
        """Run `modelpress admin ...` against the stack's database, as an operator would."""
        result = subprocess.run(
            [sys.executable, "-m", "app.cli.main", "admin", *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return json.loads(result.stdout)

    def client(self, api_key: str | None = None) -> httpx.Client:
        """An HTTP client of the API, authenticated with the stack's key unless told otherwise."""
        key = self.api_key if api_key is None else api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def logs(self, name: str, *, whole: bool = False) -> str:
        """The end of a process's log (for failure messages), or all of it."""
        path = self.log_dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text if whole else text[-8000:]

    def kill(self, name: str) -> None:
        """SIGKILL a process and everything it started: no shutdown code runs."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for name, proc in list(self.procs.items()):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.procs[name] = proc
                self.kill(name)

    def wait_for_job(self, client: httpx.Client, job_id: str, timeout_s: float = 180.0) -> Any:
        """Poll a job like a script would, until it ends."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in {"succeeded", "failed", "canceled"}:
                return job
            time.sleep(0.3)
        raise TimeoutError(f"job {job_id} did not end in {timeout_s} s:\n{self.logs('worker')}")


def standalone_stack(
    workdir: Path, name: str, *, pg_url: str, broker_url: str, env: dict[str, str]
) -> LiveStack:
    """API and worker on a fresh database `modelpress_<name>` and an emptied broker database, with
    local storage in workdir: the stack the bench/ scripts measure, outside any test session."""
    # Imported here: the test session configures its own database before app is imported.
    import redis
    from sqlalchemy import create_engine, text

    from app.migrate import upgrade_head

    database = f"modelpress_{name}"
    admin = create_engine(f"{pg_url}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    upgrade_head(f"{pg_url}/{database}")
    redis.Redis.from_url(broker_url).flushdb()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPRESS_")}
    full_env |= {
        "MODELPRESS_DATABASE_URL": f"{pg_url}/{database}",
        "MODELPRESS_BROKER_URL": broker_url,
        "MODELPRESS_QUEUE_NAME": f"modelpress-{name}",
        "MODELPRESS_BENCHMARK_QUEUE_NAME": f"modelpress-{name}-benchmark",
        "MODELPRESS_STORAGE_URL": (workdir / "storage").as_uri(),
        **env,
    }
    stack = LiveStack(env=full_env, log_dir=workdir, port=free_port())
    stack.start_api()
    stack.start_worker()
    stack.api_key = stack.admin("create-key", stack.admin("create-tenant", name)["id"])["key"]
    return stack
