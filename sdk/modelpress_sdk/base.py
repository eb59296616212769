"""The two bases of every typed answer: models that keep unknown fields, enums that keep
unknown values. A newer server may add both; this SDK must go on reading its answers."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict


class ApiModel(BaseModel):
    """The base of every answer: unknown fields are kept, not refused."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class OpenEnum(str, Enum):
    """A str enum that also takes values it does not list.

    An enum rather than a Literal so that `job.status is JobStatus.SUCCEEDED` and IDE completion
    work; open rather than closed because a Literal or a plain Enum would make a whole answer
    unreadable the day the server adds a status or verdict. An unknown value becomes a member
    of its own (not among the listed ones), still equal to its string: `job.status == "paused"`.
    A str subclass (not StrEnum, which Python 3.10 lacks) so comparisons with strings work.
    """

    @classmethod
    def _missing_(cls, value: object) -> OpenEnum | None:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        # Kept, so that the same unknown value is the same member each time.
        return cls._value2member_map_.setdefault(value, member)  # type: ignore[return-value]

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)
