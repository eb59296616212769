"""What a comparison adds beyond timing: weight error, pruning, per-node sensitivity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.jobs.tables import JobTable
from app.settings import Settings


def comparison_extras(
    original: Path, compressed: Path, job: JobTable, eval_path: Path | None, settings: Settings
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics to merge, report sections) for a compressed model against its original."""
    return {}, {}
