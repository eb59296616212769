"""Passes that misbehave on purpose, for the reliability tests.

Registered only where MODELPRESS_EXTRA_PASS_MODULES names this module (the test stack does);
they live under tests/, so no deployment ships them.
"""

from __future__ import annotations

import ctypes
import shutil
import time
from typing import Literal

from pydantic import Field

from app.compression.passes.base import (
    CompressionPass,
    PassConfig,
    PassOutcome,
    PassWork,
    register_pass,
)


class CrashConfig(PassConfig):
    type: Literal["test_crash"] = Field(default="test_crash", description="Segfaults.")


class AllocateConfig(PassConfig):
    type: Literal["test_allocate"] = Field(default="test_allocate", description="Eats memory.")


class RaiseConfig(PassConfig):
    type: Literal["test_raise"] = Field(
        default="test_raise", description="Raises an unexpected Python error."
    )


class SleepConfig(PassConfig):
    type: Literal["test_sleep"] = Field(default="test_sleep", description="Sleeps, then copies.")
    seconds: float = Field(default=1.0, ge=0, le=3600, description="How long to sleep.")


@register_pass
class CrashPass(CompressionPass[CrashConfig]):
    type = "test_crash"
    config_cls = CrashConfig

    def transform_files(self, work: PassWork, config: CrashConfig) -> PassOutcome:
        ctypes.string_at(0)  # a real invalid read: SIGSEGV, as a native library bug would give
        raise AssertionError("unreachable")


@register_pass
class AllocatePass(CompressionPass[AllocateConfig]):
    type = "test_allocate"
    config_cls = AllocateConfig

    def transform_files(self, work: PassWork, config: AllocateConfig) -> PassOutcome:
        hoard = []
        while True:  # without bound, until the memory limit stops it
            hoard.append(bytearray(64 * 1024 * 1024))


@register_pass
class RaisePass(CompressionPass[RaiseConfig]):
    type = "test_raise"
    config_cls = RaiseConfig

    def transform_files(self, work: PassWork, config: RaiseConfig) -> PassOutcome:
        return _unexpected_bug()


def _unexpected_bug() -> PassOutcome:
    raise ZeroDivisionError("a bug deep inside a pass")


@register_pass
class SleepPass(CompressionPass[SleepConfig]):
    type = "test_sleep"
    config_cls = SleepConfig

    def transform_files(self, work: PassWork, config: SleepConfig) -> PassOutcome:
        time.sleep(config.seconds)
        shutil.copyfile(work.input_path, work.output_path)
        return PassOutcome(summary=f"slept {config.seconds} s, changed nothing")
