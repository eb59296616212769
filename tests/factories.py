"""Rows for repository and service tests, built with defaults a test can override.

Each factory commits: under the test's outer transaction that only releases a savepoint, so a
request that fails and rolls back later cannot take the test's own rows with it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.jobs import repository as jobs_repository
from app.jobs.tables import JobTable
from app.onnx_models import repository as models_repository
from app.onnx_models.tables import ModelTable


def add_model(session: Session, **overrides: Any) -> ModelTable:
    values: dict[str, Any] = {
        "name": "mlp",
        "sha256": "0" * 64,
        "size_bytes": 1024,
        "storage_key": "models/test/model.onnx",
        "format": "onnx",
        "ir_version": 8,
        "opset": 17,
        "producer": "tests",
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 16]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 4]}],
        "op_counts": {"MatMul": 2},
        "param_count": 100,
    }
    values.update(overrides)
    model = models_repository.add(session, ModelTable(**values))
    session.commit()
    return model


def add_job(session: Session, model: ModelTable, **overrides: Any) -> JobTable:
    values: dict[str, Any] = {
        "model_id": model.id,
        "status": "queued",
        "progress": 0.0,
        "recipe": {"passes": [{"type": "quantize_dynamic"}]},
        "benchmark_options": {"runs": 5, "warmup": 1, "threads": 1},
        "attempts": 0,
    }
    values.update(overrides)
    job = jobs_repository.add(session, JobTable(**values))
    session.commit()
    return job
