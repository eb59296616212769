"""The pass contract: a config, a run() that turns one model file into another, and a report."""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from app.compression.errors import PassError

__all__ = ["PassError"]  # passes raise it; it lives in errors.py so the graph layer can too


class PassConfig(BaseModel):
    """Base of every pass config; `type` is the discriminator of a recipe's pass list."""

    model_config = ConfigDict(extra="forbid")

    type: str


class PassReport(BaseModel):
    """What a pass did, in numbers a user can check."""

    type: str
    summary: str = Field(description="One sentence on what changed.")
    details: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


class PassContext(BaseModel):
    """What a pass may need beyond its config: data and shapes from the job."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    calibration_path: Path | None = Field(
        default=None, description="A validated .npz: arrays named after inputs, axis 0 = samples."
    )
    input_shapes: dict[str, list[int]] | None = Field(
        default=None, description="Concrete shapes for inputs with symbolic dims."
    )
    default_dim: int = Field(default=1, description="Value of a symbolic dim left open.")
    seed: int = Field(default=0, description="Seed of any synthetic data the pass draws.")


ConfigT = TypeVar("ConfigT", bound=PassConfig)


class CompressionPass(ABC, Generic[ConfigT]):
    """One technique. Subclasses set `type` and `config_cls` and register with @register_pass."""

    type: ClassVar[str]
    config_cls: ClassVar[builtins.type[PassConfig]]

    @abstractmethod
    def run(
        self,
        input_path: Path,
        config: ConfigT,
        output_path: Path,
        context: PassContext | None = None,
    ) -> PassReport:
        """Read the model at input_path, write the result to output_path, report the change."""


PASS_REGISTRY: dict[str, type[CompressionPass[Any]]] = {}

PassT = TypeVar("PassT", bound=type[CompressionPass[Any]])


def register_pass(cls: PassT) -> PassT:
    """Class decorator: make a pass reachable from recipes by its `type`."""
    if cls.type in PASS_REGISTRY:
        raise ValueError(f"pass type {cls.type!r} registered twice")
    PASS_REGISTRY[cls.type] = cls
    return cls
