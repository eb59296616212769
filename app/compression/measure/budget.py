"""One time budget for a whole benchmark: warm-up, timed runs, batch sizes, memory, evaluation.

Each part takes a share of what is left when it starts, so time a part leaves unused goes to
the parts after it, and the last part ends at the budget's end. Loading the models is not in it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class TimeBudget:
    """A deadline `seconds` from now on the monotonic clock, handed out in shares."""

    seconds: float
    end: float = field(init=False)

    def __post_init__(self) -> None:
        self.end = time.monotonic() + max(0.0, self.seconds)

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def share(self, fraction: float) -> float:
        """The deadline of a part that may use `fraction` of the time left."""
        return time.monotonic() + fraction * self.remaining()


def seconds_until(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
