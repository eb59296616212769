"""The job lifecycle as data: states and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class JobKind(StrEnum):
    COMPRESS = "compress"  # passes, then a benchmark of the output against the input
    BENCHMARK = "benchmark"  # measure one model, alone or against a baseline
    AUTO = "auto"  # search: runs candidate jobs and recommends one of their outputs
    CANDIDATE = "candidate"  # one compress job of an auto search (parent_job_id names it)


# Kinds whose passes write an output model, benchmarked against the input.
OUTPUT_KINDS = frozenset({JobKind.COMPRESS, JobKind.CANDIDATE})

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELED}),
    # RUNNING -> QUEUED: a job whose worker vanished goes back to the queue.
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.QUEUED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}

TERMINAL_STATES = frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if not targets)
ACTIVE_STATES = frozenset(JobStatus) - TERMINAL_STATES


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


class IllegalTransitionError(ValueError):
    """A transition the lifecycle does not allow was asked for."""
