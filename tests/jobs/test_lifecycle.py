"""The lifecycle map: terminal states never change, every active state can end."""

from __future__ import annotations

from app.jobs.lifecycle import (
    ACTIVE_STATES,
    ALLOWED_TRANSITIONS,
    TERMINAL_STATES,
    JobStatus,
    can_transition,
)


def test_terminal_states_are_final() -> None:
    assert {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED} == TERMINAL_STATES
    for state in TERMINAL_STATES:
        assert not any(can_transition(state, target) for target in JobStatus)


def test_every_active_state_can_fail_or_be_canceled() -> None:
    for state in ACTIVE_STATES:
        assert can_transition(state, JobStatus.FAILED)
        assert can_transition(state, JobStatus.CANCELED)


def test_only_running_jobs_succeed() -> None:
    sources = {s for s, targets in ALLOWED_TRANSITIONS.items() if JobStatus.SUCCEEDED in targets}
    assert sources == {JobStatus.RUNNING}
