"""GET /v1/jobs/{id}?wait=N: held until the job's status or stage changes, without holding a
database connection while it waits."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, update

from app.db import session_scope
from app.jobs.tables import JobTable
from app.main import app
from app.onnx_models.tables import ModelTable
from app.tenants.tables import TenantTable
from tests.builders import build_mlp
from tests.conftest import issue_key
from tests.factories import add_job, add_model
from tests.stack import LiveStack

TERMINAL = {"succeeded", "failed", "canceled"}


@dataclass
class Committed:
    """A tenant, its key and one queued job, committed for real: the watcher reads them in
    sessions of its own, as it does in production."""

    tenant_id: str
    key: str
    job_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
def committed(database_url: str) -> Iterator[Committed]:
    tenant_id = f"poll-{uuid.uuid4().hex[:8]}"
    with session_scope() as session:
        key = issue_key(session, tenant_id)
        job_id = add_job(session, add_model(session, tenant_id=tenant_id), tenant_id=tenant_id).id
    yield Committed(tenant_id, key, job_id)
    with session_scope() as session:
        session.execute(delete(JobTable).where(JobTable.tenant_id == tenant_id))
        session.execute(delete(ModelTable).where(ModelTable.tenant_id == tenant_id))
        session.execute(delete(TenantTable).where(TenantTable.id == tenant_id))


def _commit_later(job_id: str, after_s: float, **values: object) -> threading.Thread:
    """Another writer (a worker, say) changes the job after a while, in its own transaction."""

    def change() -> None:
        time.sleep(after_s)
        with session_scope() as session:
            session.execute(update(JobTable).where(JobTable.id == job_id).values(**values))

    thread = threading.Thread(target=change)
    thread.start()
    return thread


def _in_process(committed: Committed) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(
        transport=transport, base_url="http://api", headers=committed.headers, timeout=30
    )


async def _timed_get(
    client: httpx.AsyncClient, path: str, **kwargs: object
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.get(path, **kwargs)  # type: ignore[arg-type]
    return response, time.monotonic() - started


def test_a_status_change_answers_the_long_poll_at_once_with_the_new_body(
    committed: Committed,
) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response, float]:
        async with _in_process(committed) as client:
            first = await client.get(f"/v1/jobs/{committed.job_id}")
            writer = _commit_later(committed.job_id, 0.5, status="running", stage="starting")
            held, seconds = await _timed_get(
                client,
                f"/v1/jobs/{committed.job_id}",
                params={"wait": 20},
                headers={"If-None-Match": first.headers["etag"]},
            )
            writer.join()
            return first, held, seconds

    first, held, seconds = asyncio.run(scenario())

    assert held.status_code == 200
    assert (held.json()["status"], held.json()["stage"]) == ("running", "starting")
    assert held.headers["etag"] != first.headers["etag"]
    assert 0.4 < seconds < 3, seconds


def test_a_long_poll_on_an_unchanged_job_times_out_with_a_304(committed: Committed) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response, float]:
        async with _in_process(committed) as client:
            first = await client.get(f"/v1/jobs/{committed.job_id}")
            held, seconds = await _timed_get(
                client,
                f"/v1/jobs/{committed.job_id}",
                params={"wait": 2},
                headers={"If-None-Match": first.headers["etag"]},
            )
            return first, held, seconds

    first, held, seconds = asyncio.run(scenario())

    assert held.status_code == 304 and held.content == b""
    assert held.headers["etag"] == first.headers["etag"]
    assert 1.9 < seconds < 4, seconds


def test_progress_alone_does_not_end_the_wait_and_the_timeout_answers_the_new_body(
    committed: Committed,
) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response, float]:
        async with _in_process(committed) as client:
            first = await client.get(f"/v1/jobs/{committed.job_id}")
            writer = _commit_later(committed.job_id, 0.3, progress=0.5)
            held, seconds = await _timed_get(
                client,
                f"/v1/jobs/{committed.job_id}",
                params={"wait": 1},
                headers={"If-None-Match": first.headers["etag"]},
            )
            writer.join()
            return first, held, seconds

    first, held, seconds = asyncio.run(scenario())

    assert held.status_code == 200 and held.json()["progress"] == 0.5
    assert held.headers["etag"] != first.headers["etag"]
    assert 0.9 < seconds < 3, seconds


def test_a_stale_etag_or_a_finished_job_is_answered_at_once(committed: Committed) -> None:
    async def scenario() -> tuple[tuple[httpx.Response, float], tuple[httpx.Response, float]]:
        async with _in_process(committed) as client:
            path = f"/v1/jobs/{committed.job_id}"
            stale = await _timed_get(
                client, path, params={"wait": 20}, headers={"If-None-Match": '"old"'}
            )
            with session_scope() as session:
                session.execute(
                    update(JobTable)
                    .where(JobTable.id == committed.job_id)
                    .values(status="canceled", stage="canceled")
                )
            etag = (await client.get(path)).headers["etag"]
            finished = await _timed_get(
                client, path, params={"wait": 20}, headers={"If-None-Match": etag}
            )
            return stale, finished

    (stale, stale_s), (finished, finished_s) = asyncio.run(scenario())

    assert stale.status_code == 200 and stale.json()["status"] == "queued" and stale_s < 2
    assert finished.status_code == 304 and finished_s < 2


@pytest.mark.parametrize("wait", ["61", "-1", "soon"])
def test_a_wait_outside_0_to_60_is_a_validation_problem(committed: Committed, wait: str) -> None:
    async def scenario() -> httpx.Response:
        async with _in_process(committed) as client:
            return await client.get(f"/v1/jobs/{committed.job_id}", params={"wait": wait})

    response = asyncio.run(scenario())

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_request"
    assert "wait" in response.text


def test_another_tenants_job_is_a_404_even_with_wait(committed: Committed) -> None:
    async def scenario() -> httpx.Response:
        async with _in_process(committed) as client:
            return await client.get("/v1/jobs/nope", params={"wait": 5})

    assert asyncio.run(scenario()).status_code == 404


def test_many_waiters_hold_no_connection_and_a_plain_get_stays_fast(
    committed: Committed,
) -> None:
    """More waiters than the pool has connections (10 + 30 overflow): were any held, the
    plain GET would queue for the pool's 10 s timeout."""
    waiters = 50

    async def scenario() -> tuple[list[httpx.Response], float, httpx.Response, float]:
        async with _in_process(committed) as client:
            path = f"/v1/jobs/{committed.job_id}"
            etag = (await client.get(path)).headers["etag"]
            started = time.monotonic()
            held = [
                asyncio.ensure_future(
                    client.get(path, params={"wait": 10}, headers={"If-None-Match": etag})
                )
                for _ in range(waiters)
            ]
            await asyncio.sleep(1.5)  # all of them are waiting by now
            plain, plain_s = await _timed_get(client, path)
            await asyncio.to_thread(
                _commit_later(committed.job_id, 0, status="running", stage="starting").join
            )
            answered = await asyncio.gather(*held)
            return answered, time.monotonic() - started, plain, plain_s

    answered, all_s, plain, plain_s = asyncio.run(scenario())

    assert plain.status_code == 200 and plain_s < 1.0, plain_s
    assert [r.status_code for r in answered] == [200] * waiters
    assert {r.json()["status"] for r in answered} == {"running"}
    assert all_s < 5, all_s


def test_a_real_worker_wakes_each_long_poll_until_the_job_ends(
    live_stack: LiveStack, tmp_path: Path
) -> None:
    model = build_mlp(tmp_path / "poll.onnx", sizes=(16, 32, 8))
    body_passes = [{"type": "test_sleep", "seconds": 2}, {"type": "optimize_graph"}]
    with live_stack.client() as client:
        upload = client.post("/v1/models", files={"file": (model.name, model.read_bytes())})
        body = {"model_id": upload.json()["id"], "recipe": {"passes": body_passes}}
        created = client.post("/v1/jobs", json=body)
        assert created.status_code == 202, created.text
        job_id, etag = created.json()["id"], None
        seen: list[tuple[str, str | None, float, int]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            headers = {"If-None-Match": etag} if etag else {}
            started = time.monotonic()
            response = client.get(
                f"/v1/jobs/{job_id}", params={"wait": 30}, headers=headers, timeout=40
            )
            job = response.json()
            seen.append(
                (job["status"], job["stage"], time.monotonic() - started, response.status_code)
            )
            etag = response.headers["etag"]
            if job["status"] in TERMINAL:
                break

    assert seen[-1][0] == "succeeded", (seen, live_stack.logs("worker"))
    # Every answer was a change (200), well before the 30 s wait ran out.
    assert all(code == 200 and held_s < 15 for *_, held_s, code in seen), seen
    stages = [stage for _, stage, _, _ in seen]
    assert "test_sleep" in stages, seen


def test_a_client_that_leaves_releases_its_wait(live_stack: LiveStack, tmp_path: Path) -> None:
    model = build_mlp(tmp_path / "leave.onnx", sizes=(16, 32, 8))
    request_id = uuid.uuid4().hex
    with live_stack.client() as client:
        upload = client.post("/v1/models", files={"file": (model.name, model.read_bytes())})
        passes = [{"type": "test_sleep", "seconds": 8}]
        body = {"model_id": upload.json()["id"], "recipe": {"passes": passes}}
        job_id = client.post("/v1/jobs", json=body).json()["id"]
        deadline = time.monotonic() + 60
        while (job := client.get(f"/v1/jobs/{job_id}")).json()["stage"] != "test_sleep":
            assert time.monotonic() < deadline, live_stack.logs("worker")
            time.sleep(0.1)
        headers = {"If-None-Match": job.headers["etag"], "X-Request-ID": request_id}
        left_at = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"/v1/jobs/{job_id}", params={"wait": 30}, headers=headers, timeout=1)
        # The server notices the closed connection and ends the request (logged as 499) long
        # before the job changes or the 30 s run out.
        while request_id not in live_stack.logs("api", whole=True):
            assert time.monotonic() - left_at < 5, live_stack.logs("api")
            time.sleep(0.1)
        client.post(f"/v1/jobs/{job_id}/cancel")
    line = next(
        line for line in live_stack.logs("api", whole=True).splitlines() if request_id in line
    )
    assert '"status": 499' in line, line
