"""Bounded load test on loopback: N job submissions, P concurrent pollers, and a count of lost jobs.

By default it starts the production shape on loopback: uvicorn and a Celery worker on the local
Postgres (a database of its own) and Redis (database 14), files in a temporary folder. `--url` (and
`--api-key`) point it at a running deployment instead.

    .venv/bin/python bench/load_test.py [--jobs 1000] [--pollers 100] [--seconds 600]
        [--mode plain|conditional|long-poll]

Pollers ask for random unfinished jobs: `plain` sends a bare GET every 50 ms; `conditional`
sends the job's last ETag in If-None-Match (mostly 304s); `long-poll` holds `?wait=30` with the
ETag, as the SDK does, while a few probes keep timing plain GETs every 100 ms.

Every accepted job must be found again: `lost` counts accepted jobs that answer 404 or vanish.
Jobs still queued or running when the time is up are reported as such (not lost, just slow).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from tests.builders import build_mlp  # noqa: E402
from tests.stack import LiveStack, standalone_stack  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
BROKER = "redis://127.0.0.1:6379/14"

TERMINAL = {"succeeded", "failed", "canceled"}
MODES = ("plain", "conditional", "long-poll")
LONG_POLL_S = 30
PROBES = 5
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


async def _submit(
    client: httpx.AsyncClient, model_id: str, jobs: int, submitters: int
) -> tuple[list[str], Counter]:
    accepted: list[str] = []
    refused: Counter = Counter()
    gate = asyncio.Semaphore(submitters)

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


def _answer(response: httpx.Response) -> str:
    """The status, and for a problem its code: what the answers are counted by."""
    if response.status_code < 400:
        return str(response.status_code)
    try:
        return f"{response.status_code} {response.json().get('code')}"
    except ValueError:
        return str(response.status_code)


class Polling:
    """What the pollers saw: each job's last status and ETag, latencies, answers by status."""

    def __init__(self, ids: list[str], seconds: float) -> None:
        self.status = dict.fromkeys(ids, "queued")
        self.etags: dict[str, str] = {}
        self.latencies: list[float] = []  # short GETs (plain or conditional, or the probes')
        self.long_polls: list[float] = []  # how long each long-poll was held
        self.answers: Counter = Counter()
        self.missing = 0
        self.deadline = time.monotonic() + seconds

    def open_ids(self) -> list[str]:
        return [i for i, s in self.status.items() if s not in TERMINAL]

    def going(self) -> bool:
        return time.monotonic() < self.deadline and bool(self.open_ids())

    def saw(self, job_id: str, response: httpx.Response) -> None:
        self.answers[_answer(response)] += 1
        if response.status_code == 404:
            self.missing += 1
            self.status[job_id] = "lost"
        elif response.status_code == 200:
            self.status[job_id] = response.json()["status"]
            self.etags[job_id] = response.headers["etag"]


async def _get(
    client: httpx.AsyncClient, seen: Polling, path: str, **kwargs: Any
) -> httpx.Response | None:
    """The answer, or None after a transport error (counted: the server closed the connection)."""
    try:
        return await client.get(path, **kwargs)
    except httpx.TransportError as exc:
        seen.answers[f"error {type(exc).__name__}"] += 1
        return None


async def _short_poller(client: httpx.AsyncClient, seen: Polling, conditional: bool) -> None:
    while seen.going():
        job_id = random.choice(seen.open_ids())
        etag = seen.etags.get(job_id) if conditional else None
        headers = {"If-None-Match": etag} if etag else {}
        started = time.perf_counter()
        response = await _get(client, seen, f"/v1/jobs/{job_id}", headers=headers)
        if response is not None:
            seen.latencies.append((time.perf_counter() - started) * 1000)
            seen.saw(job_id, response)
        await asyncio.sleep(0.05)


async def _long_poller(client: httpx.AsyncClient, seen: Polling) -> None:
    """Follows one unfinished job at a time until it ends, as the SDK's wait() does."""
    while seen.going():
        job_id = random.choice(seen.open_ids())
        while seen.status[job_id] not in TERMINAL and time.monotonic() < seen.deadline:
            etag = seen.etags.get(job_id)
            headers = {"If-None-Match": etag} if etag else {}
            started = time.perf_counter()
            response = await _get(
                client, seen, f"/v1/jobs/{job_id}", params={"wait": LONG_POLL_S}, headers=headers
            )
            if response is None:
                await asyncio.sleep(0.05)
                continue
            seen.long_polls.append(time.perf_counter() - started)
            seen.saw(job_id, response)


async def _probe(client: httpx.AsyncClient, seen: Polling) -> None:
    """A plain GET every 100 ms: the latency everyone else gets while the long-polls wait."""
    while seen.going():
        job_id = random.choice(list(seen.status))
        started = time.perf_counter()
        response = await _get(client, seen, f"/v1/jobs/{job_id}")
        if response is not None:
            seen.latencies.append((time.perf_counter() - started) * 1000)
            seen.answers[f"probe {_answer(response)}"] += 1
        await asyncio.sleep(0.1)


async def _poll(client: httpx.AsyncClient, ids: list[str], args: argparse.Namespace) -> Polling:
    seen = Polling(ids, args.seconds)
    if args.mode == "long-poll":
        pollers = [_long_poller(client, seen) for _ in range(args.pollers)]
        pollers += [_probe(client, seen) for _ in range(PROBES)]
    else:
        conditional = args.mode == "conditional"
        pollers = [_short_poller(client, seen, conditional) for _ in range(args.pollers)]
    await asyncio.gather(*pollers)
    return seen


def _percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "too few to measure"
    q = statistics.quantiles(values, n=100)
    return f"p50 {q[49]:.1f} ms, p90 {q[89]:.1f} ms, p99 {q[98]:.1f} ms, max {max(values):.1f} ms"


async def run(args: argparse.Namespace, url: str) -> int:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limits = httpx.Limits(max_connections=args.pollers + PROBES + args.submitters + 10)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=LONG_POLL_S + 30, limits=limits
    ) as client:
        with tempfile.TemporaryDirectory() as tmp:
            model = build_mlp(Path(tmp) / "load.onnx", sizes=(16, 32, 8))
            files = {"file": (model.name, model.read_bytes())}
            model_id = (await client.post("/v1/models", files=files)).json()["id"]
        started = time.monotonic()
        accepted, refused = await _submit(client, model_id, args.jobs, args.submitters)
        submit_s = time.monotonic() - started
        started = time.monotonic()
        seen = await _poll(client, accepted, args)
        poll_s = time.monotonic() - started
    counts = Counter(seen.status.values())
    finished = sum(counts[s] for s in TERMINAL)
    print(
        f"submitted {args.jobs} in {submit_s:.1f} s: "
        f"accepted {len(accepted)}, refused {dict(refused)}"
    )
    print(f"finished {finished} ({dict((s, counts[s]) for s in TERMINAL)}) in {poll_s:.1f} s, "
          f"still active {counts['queued'] + counts['running']}, lost {seen.missing}")  # fmt: skip
    print(f"mode {args.mode}, {args.pollers} pollers; answers {dict(seen.answers)}")
    who = f"{PROBES} probes' plain" if args.mode == "long-poll" else args.mode
    print(f"{who} GET /v1/jobs/{{id}}: {len(seen.latencies)} requests, "
          f"{_percentiles(seen.latencies)}")  # fmt: skip
    if seen.long_polls:
        held = (
            statistics.quantiles(seen.long_polls, n=100) if len(seen.long_polls) > 1 else [0] * 99
        )
        print(f"long-polls (wait={LONG_POLL_S}): {len(seen.long_polls)}, held "
              f"p50 {held[49]:.2f} s, p99 {held[98]:.2f} s")  # fmt: skip
    return 1 if seen.missing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--pollers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=600, help="how long to poll at most")
    parser.add_argument("--mode", choices=MODES, default="plain", help="how pollers ask")
    parser.add_argument("--submitters", type=int, default=50, help="POSTs in flight at most")
    parser.add_argument("--url", help="a running ModelPress; default: start an embedded one")
    parser.add_argument("--api-key", default=os.environ.get("MODELPRESS_API_KEY"))
    parser.add_argument("--logs", type=Path, help="copy the started stack's logs here at the end")
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
            if args.logs:
                args.logs.mkdir(parents=True, exist_ok=True)
                for log in Path(workdir).glob("*.log"):
                    shutil.copy(log, args.logs / log.name)


if __name__ == "__main__":
    raise SystemExit(main())
