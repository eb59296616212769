"""The long-poll watcher: one query per tick for every waiter, none without waiters, and waiters
woken by a change of status or stage committed by another session."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, event, update

from app.db import get_engine, session_scope
from app.jobs.tables import JobTable
from app.jobs.watch import JobWatcher
from app.onnx_models.tables import ModelTable
from tests.factories import add_job, add_model

TICK_S = 0.1


@pytest.fixture
def job_ids(database_url: str) -> Iterator[list[str]]:
    """Three queued jobs, committed so that the watcher's own sessions see them."""
    tenant_id = f"watch-{uuid.uuid4().hex[:8]}"
    with session_scope() as session:
        model = add_model(session, tenant_id=tenant_id)
        ids = [add_job(session, model, tenant_id=tenant_id).id for _ in range(3)]
    yield ids
    with session_scope() as session:
        session.execute(delete(JobTable).where(JobTable.tenant_id == tenant_id))
        session.execute(delete(ModelTable).where(ModelTable.tenant_id == tenant_id))


@pytest.fixture
def state_queries() -> Iterator[list[str]]:
    """The watcher's queries sent to the database, as they are sent."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("SELECT jobs.id, jobs.status, jobs.stage"):
            sent.append(statement)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


async def _change_later(job_id: str, after_s: float, **values: object) -> None:
    await asyncio.sleep(after_s)

    def commit() -> None:
        with session_scope() as session:
            session.execute(update(JobTable).where(JobTable.id == job_id).values(**values))

    await asyncio.to_thread(commit)


def test_a_committed_status_change_wakes_only_that_jobs_waiters(job_ids: list[str]) -> None:
    watcher = JobWatcher(tick_s=TICK_S)
    moving, still, _ = job_ids

    async def scenario() -> tuple[list[bool], float]:
        started = time.monotonic()
        woken = asyncio.gather(
            watcher.wait_for_change(moving, ("queued", None), 10),
            watcher.wait_for_change(moving, ("queued", None), 10),
            watcher.wait_for_change(still, ("queued", None), 1),
        )
        await _change_later(moving, 0.3, status="running", stage="starting")
        return await woken, time.monotonic() - started

    woken, seconds = asyncio.run(scenario())

    assert woken == [True, True, False]
    assert seconds < 2
    assert watcher.watched == 0


def test_a_stage_change_wakes_and_progress_alone_does_not(job_ids: list[str]) -> None:
    watcher = JobWatcher(tick_s=TICK_S)
    staged, progressed, _ = job_ids

    async def scenario() -> list[bool]:
        woken = asyncio.gather(
            watcher.wait_for_change(staged, ("queued", None), 5),
            watcher.wait_for_change(progressed, ("queued", None), 1),
        )
        await _change_later(staged, 0.2, stage="requeued")
        await _change_later(progressed, 0, progress=0.5)
        return await woken

    assert asyncio.run(scenario()) == [True, False]


def test_a_deleted_job_wakes_its_waiter(job_ids: list[str]) -> None:
    watcher = JobWatcher(tick_s=TICK_S)

    async def scenario() -> bool:
        waiting = asyncio.ensure_future(watcher.wait_for_change(job_ids[0], ("queued", None), 5))
        await asyncio.sleep(0.2)

        def remove() -> None:
            with session_scope() as session:
                session.execute(delete(JobTable).where(JobTable.id == job_ids[0]))

        await asyncio.to_thread(remove)
        return await waiting

    assert asyncio.run(scenario()) is True


def test_one_query_per_tick_for_all_waiters_and_none_without_them(
    job_ids: list[str], state_queries: list[str]
) -> None:
    watcher = JobWatcher(tick_s=TICK_S)

    async def scenario() -> tuple[int, int]:
        waits = [watcher.wait_for_change(job_id, ("queued", None), 1) for job_id in job_ids * 10]
        await asyncio.gather(*waits)
        during = len(state_queries)
        await asyncio.sleep(5 * TICK_S)  # nobody waits: the watcher has stopped
        return during, len(state_queries) - during

    during, after = asyncio.run(scenario())

    # 30 waiters for 1 s at 10 ticks a second: about 10 queries, not 300.
    assert 5 <= during <= 12, during
    assert after == 0
    assert watcher.watched == 0


def test_a_cancelled_wait_forgets_its_waiter(job_ids: list[str]) -> None:
    watcher = JobWatcher(tick_s=TICK_S)

    async def scenario() -> int:
        waiting = asyncio.ensure_future(watcher.wait_for_change(job_ids[0], ("queued", None), 30))
        await asyncio.sleep(0.25)
        assert watcher.watched == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return watcher.watched

    assert asyncio.run(scenario()) == 0
