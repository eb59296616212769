"""Long-polling a job: `GET /v1/jobs/{id}?wait=N` answers when the job's status or stage
changes, or after N seconds.

A waiting request holds neither a database connection nor a thread: every read runs in the
threadpool and ends its transaction (the connection goes back to the pool) before the wait.
One watcher per event loop (started on the first wait, stopped when none is left) reads the
state of every watched job with one query per tick and wakes the requests whose job moved on.
With no waiter, it sends no query at all.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.db import session_scope
from app.etag import matches, not_modified_or, tagged
from app.jobs import repository, service
from app.jobs.lifecycle import TERMINAL_STATES
from app.jobs.schemas import JobOut

log = logging.getLogger(__name__)

MAX_WAIT_S = 60
# How often the watcher reads the watched jobs: the most a change waits to be noticed.
TICK_S = 0.25
# Ids per query: far under every database's limit on bound parameters.
IDS_PER_QUERY = 500
# Logged like nginx's "client closed request"; nobody receives it.
CLIENT_CLOSED_REQUEST = 499

JobState = tuple[str, str | None]  # (status, stage): what a long-poll waits to see change


class Outcome(enum.Enum):
    CHANGED = "changed"
    TIMED_OUT = "timed_out"
    CLIENT_GONE = "client_gone"


@dataclass(eq=False)
class _Waiter:
    seen: JobState
    changed: asyncio.Event = field(default_factory=asyncio.Event)


def read_states(job_ids: list[str]) -> dict[str, JobState]:
    """The (status, stage) of these jobs, in a session of its own (run in the threadpool)."""
    states: dict[str, JobState] = {}
    with session_scope() as session:
        for start in range(0, len(job_ids), IDS_PER_QUERY):
            states |= repository.read_states(session, job_ids[start : start + IDS_PER_QUERY])
    return states


class JobWatcher:
    """The waiters of one event loop, and the task that reads their jobs while any wait."""

    def __init__(
        self,
        read: Callable[[list[str]], dict[str, JobState]] = read_states,
        tick_s: float = TICK_S,
    ) -> None:
        self._read, self._tick_s = read, tick_s
        self._waiters: dict[str, set[_Waiter]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def watched(self) -> int:
        """Requests waiting now."""
        return sum(len(waiters) for waiters in self._waiters.values())

    async def wait_for_change(self, job_id: str, seen: JobState, timeout_s: float) -> bool:
        """True once the job's (status, stage) differs from `seen` (or the job is gone); False
        after `timeout_s`. Cancelling the wait forgets the waiter."""
        waiter = _Waiter(seen)
        self._waiters.setdefault(job_id, set()).add(waiter)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())
        try:
            await asyncio.wait_for(waiter.changed.wait(), timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[job_id]

    async def _watch(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._tick_s)
                if not self._waiters:
                    return  # no await between this check and the reset below: no waiter is missed
                await self._tick(list(self._waiters))
        finally:
            self._task = None

    async def _tick(self, job_ids: list[str]) -> None:
        try:
            states = await run_in_threadpool(self._read, job_ids)
        except Exception:
            # The waiters keep waiting (at worst until their timeout); the next tick tries again.
            log.warning("could not read the state of watched jobs", exc_info=True)
            return
        for job_id in job_ids:
            current = states.get(job_id)  # None: the job was deleted, which is a change too
            for waiter in self._waiters.get(job_id, ()):
                if current != waiter.seen:
                    waiter.changed.set()


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, JobWatcher] = (
    weakref.WeakKeyDictionary()
)


def watcher() -> JobWatcher:
    """This event loop's watcher (one per process under uvicorn; tests start loops of their own)."""
    loop = asyncio.get_running_loop()
    if loop not in _watchers:
        _watchers[loop] = JobWatcher()
    return _watchers[loop]


async def until_disconnected(request: Request) -> None:
    """Returns once the client has gone away (the request body, if any, is read and dropped)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def wait_or_disconnect(
    request: Request, job_id: str, seen: JobState, wait_s: float
) -> Outcome:
    """Wait for the job to change, unless the client leaves first: then the waiter goes too."""
    change = asyncio.ensure_future(watcher().wait_for_change(job_id, seen, wait_s))
    gone = asyncio.ensure_future(until_disconnected(request))
    try:
        await asyncio.wait((change, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (change, gone):
            task.cancel()
    if change.done() and not change.cancelled():
        return Outcome.CHANGED if change.result() else Outcome.TIMED_OUT
    return Outcome.CLIENT_GONE


def read_job(session: Session, job_id: str, tenant_id: str) -> tuple[JobOut, JSONResponse]:
    """The job and its tagged JSON answer (run in the threadpool). The transaction ends here:
    the request's session keeps no connection while the request waits."""
    job = service.to_out(service.get(session, job_id, tenant_id=tenant_id))
    session.commit()
    return job, tagged(job)


async def answer(
    request: Request, session: Session, job_id: str, tenant_id: str, wait_s: int
) -> Response:
    """GET /v1/jobs/{id}: the job now, or with `wait_s` its next status or stage (see module)."""
    job, current = await run_in_threadpool(read_job, session, job_id, tenant_id)
    if_none_match = request.headers.get("if-none-match")
    caller_is_current = if_none_match is None or matches(if_none_match, current.headers["ETag"])
    if wait_s <= 0 or job.status in TERMINAL_STATES or not caller_is_current:
        return not_modified_or(request, current)
    outcome = await wait_or_disconnect(request, job_id, (job.status.value, job.stage), wait_s)
    if outcome is Outcome.CLIENT_GONE:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    # Changed: the new body; timed out: answered as without wait (progress may have moved).
    session.expire_all()  # read the row anew, not the identity map's copy (in memory only)
    _, latest = await run_in_threadpool(read_job, session, job_id, tenant_id)
    return not_modified_or(request, latest)
