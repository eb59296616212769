"""Bounded load test on loopback: N job submissions, P concurrent pollers, and a count of lost jobs.

By default it starts the production shape on loopback: uvicorn and a Celery worker on the local
Postgres (a database of its own) and Redis (database 14), files in a temporary folder. `--url` (and
`--api-key`) point it at a running deployment instead.

    .venv/bin/python bench/load_test.py [--jobs 1000] [--pollers 100] [--seconds 600]

Every accepted job must be found again: `lost` counts accepted jobs that answer 404 or vanish.
Jobs still queued or running when the time is up are reported as such (not lost, just slow).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from tests.builders import build_mlp  # noqa: E402
from tests.stack import LiveStack, standalone_stack  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
BROKER = "redis://127.0.0.1:6379/14"

TERMINAL = {"succeeded", "failed", "canceled"}
# The cheapest real job: one graph pass and a one-run benchmark.
RECIPE = {"passes": [{"type": "optimize_graph", "level": "basic"}]}


def _start_stack(workdir: Path, jobs: int) -> LiveStack:
    """API and worker processes on Postgres and Redis, with limits raised for this test only."""
    return standalone_stack(
        workdir,
        "load",
        pg_url=PG,
        broker_url=BROKER,
        env={
            "MODELPRESS_MAX_ACTIVE_JOBS_PER_TENANT": str(jobs + 1),
            "MODELPRESS_JOB_SUBMISSIONS_PER_MINUTE": str(jobs + 1),
        },
    )


async def _submit(client: httpx.AsyncClient, model_id: str, jobs: int) -> tuple[list[str], Counter]:
    accepted: list[str] = []
    refused: Counter = Counter()
    gate = asyncio.Semaphore(50)

    async def one() -> None:
        async with gate:
            body = {"model_id": model_id, "recipe": RECIPE, "benchmark": {"runs": 1, "warmup": 0}}
            response = await client.post("/v1/jobs", json=body)
            if response.status_code == 202:
                accepted.append(response.json()["id"])
            else:
                refused[f"{response.status_code} {response.json().get('code')}"] += 1

    await asyncio.gather(*(one() for _ in range(jobs)))
    return accepted, refused


async def _poll(
    client: httpx.AsyncClient, ids: list[str], pollers: int, seconds: float
) -> tuple[dict[str, str], list[float], int]:
    status = dict.fromkeys(ids, "queued")
    latencies: list[float] = []
    missing = 0
    deadline = time.monotonic() + seconds

    async def poller() -> None:
        nonlocal missing
        while time.monotonic() < deadline:
            open_ids = [i for i, s in status.items() if s not in TERMINAL]
            if not open_ids:
                return
            job_id = random.choice(open_ids)
            started = time.perf_counter()
            response = await client.get(f"/v1/jobs/{job_id}")
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code == 404:
                missing += 1
                status[job_id] = "lost"
            elif response.status_code == 200:
                status[job_id] = response.json()["status"]
            await asyncio.sleep(0.05)

    await asyncio.gather(*(poller() for _ in range(pollers)))
    return status, latencies, missing


async def run(args: argparse.Namespace, url: str) -> int:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limits = httpx.Limits(max_connections=args.pollers + 10)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=60, limits=limits
    ) as client:
        with tempfile.TemporaryDirectory() as tmp:
            model = build_mlp(Path(tmp) / "load.onnx", sizes=(16, 32, 8))
            files = {"file": (model.name, model.read_bytes())}
            model_id = (await client.post("/v1/models", files=files)).json()["id"]
        started = time.monotonic()
        accepted, refused = await _submit(client, model_id, args.jobs)
        submit_s = time.monotonic() - started
        status, latencies, missing = await _poll(client, accepted, args.pollers, args.seconds)
    counts = Counter(status.values())
    finished = sum(counts[s] for s in TERMINAL)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(
        f"submitted {args.jobs} in {submit_s:.1f} s: "
        f"accepted {len(accepted)}, refused {dict(refused)}"
    )
    print(f"finished {finished} ({dict((s, counts[s]) for s in TERMINAL)}), "
          f"still active {counts['queued'] + counts['running']}, lost {missing}")  # fmt: skip
    print(f"GET /v1/jobs/{{id}}: {len(latencies)} requests by {args.pollers} pollers, "
          f"p50 {quantiles[49]:.1f} ms, p99 {quantiles[98]:.1f} ms")  # fmt: skip
    return 1 if missing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--pollers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=600, help="how long to poll at most")
    parser.add_argument("--url", help="a running ModelPress; default: start an embedded one")
    parser.add_argument("--api-key", default=os.environ.get("MODELPRESS_API_KEY"))
    args = parser.parse_args()
    if args.url:
        return asyncio.run(run(args, args.url))
    with tempfile.TemporaryDirectory() as workdir:
        stack = _start_stack(Path(workdir), args.jobs)
        args.api_key = stack.api_key
        try:
            return asyncio.run(run(args, stack.url))
        finally:
            stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
