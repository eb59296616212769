"""Request shape of the benchmarks API (the answer is a Job)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from app.compression.measure.options import (
    INPUT_VALUES_DESCRIPTION,
    BenchmarkOptions,
    InputValue,
)
from app.jobs.schemas import (
    WEBHOOK_DESCRIPTION,
    InputShapes,
    WebhookEventsFilter,
    all_webhook_events,
)


class BenchmarkCreate(BenchmarkOptions):
    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(max_length=64, description="The model to measure.")
    baseline_model_id: str | None = Field(
        default=None, max_length=64, description="Compare against this model (the 'original')."
    )
    eval_dataset_id: str | None = Field(
        default=None, max_length=64, description="Evaluation inputs (and labels for accuracy)."
    )
    input_shapes: InputShapes | None = Field(
        default=None, description="Fixed shapes for inputs with symbolic dims, by input name."
    )
    input_values: dict[str, InputValue] | None = Field(
        default=None, description=INPUT_VALUES_DESCRIPTION
    )
    webhook: str | None = Field(default=None, max_length=2048, description=WEBHOOK_DESCRIPTION)
    webhook_events_filter: WebhookEventsFilter = Field(default_factory=all_webhook_events)
