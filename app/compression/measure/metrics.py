"""The metrics a benchmark returns: one model's block, the pair's comparison, and their parts.

These are what a job stores and what the API shows. A field that is None was not measured (no
labels, no batch axis, no procfs...): it is left out of the JSON rather than written as null.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

# The primary metric that fits the labels: class ids, sequences of class ids, or float targets.
AccuracyMetric = Literal["top1", "exact_match", "position_accuracy", "mse"]
ACCURACY_METRIC_DESCRIPTION = (
    "top1 for integer class labels; for integer sequence labels [samples, positions] "
    "exact_match (with a CTC blank index) or position_accuracy (without); mse for float targets."
)


class MetricsModel(BaseModel):
    """Base of the metrics models: None fields are omitted when serialized."""

    # inf/nan (an mse of a model gone wild) survive the trip through JSON, as json.dumps did.
    model_config = ConfigDict(ser_json_inf_nan="constants")

    # No return annotation: with one, pydantic would document every model as a bare object.
    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler):
        return {key: value for key, value in handler(self).items() if value is not None}


class LatencyStats(MetricsModel):
    """Run times of one model in milliseconds."""

    p50: float = Field(description="Median run time, ms (linear interpolation).")
    p90: float = Field(description="90th percentile run time, ms.")
    p99: float = Field(description="99th percentile run time, ms.")
    mean: float = Field(description="Mean run time, ms.")
    std: float = Field(description="Sample standard deviation (n-1) of the run times, ms.")
    cv: float = Field(description="Coefficient of variation std / mean: above 0.25 is noisy.")


class Host(MetricsModel):
    """Where the numbers were measured: they only compare on the same fingerprint."""

    cpu: str = Field(description="CPU model name.")
    cores: int = Field(description="Intra-op threads the sessions ran with.")
    cpu_count: int | None = Field(default=None, description="Logical CPUs of the host.")
    onnxruntime: str = Field(description="ONNX Runtime version.")
    provider: str = Field(description="Execution provider that ran the model.")
    features: list[str] | None = Field(
        default=None,
        description="CPU features that decide int8/fp16 speed (avx2, avx512_vnni, avx_vnni, "
        "amx_int8, avx512_fp16, ...); absent when unknown (fingerprints from before).",
    )


class ModelAccuracy(MetricsModel):
    """Task accuracy of one model against the evaluation dataset's labels."""

    metric: AccuracyMetric = Field(description=ACCURACY_METRIC_DESCRIPTION)
    value: float = Field(description="The primary metric's value.")
    samples: int = Field(description="Evaluation samples scored.")
    top5: float | None = Field(default=None, description="Top-5 accuracy (5 classes or more).")
    mae: float | None = Field(default=None, description="Mean absolute error (float targets).")
    exact_match: float | None = Field(
        default=None, description="Share of sequences predicted exactly (sequence labels)."
    )
    position_accuracy: float | None = Field(
        default=None, description="Share of labelled positions predicted right (sequence labels)."
    )


class MetricChange(MetricsModel):
    """One metric on both models."""

    original: float = Field(description="Value on the original model.")
    compressed: float = Field(description="Value on the compressed model.")
    delta: float = Field(description="compressed - original.")


class Accuracy(MetricsModel):
    """Task accuracy of both models against the evaluation dataset's labels."""

    metric: AccuracyMetric = Field(description=ACCURACY_METRIC_DESCRIPTION)
    original: float = Field(description="The primary metric on the original model.")
    compressed: float = Field(description="The primary metric on the compressed model.")
    delta: float = Field(description="compressed - original: negative top-1 is a loss.")
    samples: int = Field(description="Evaluation samples scored.")
    top5: MetricChange | None = Field(
        default=None, description="Top-5 accuracy of both (5 classes or more)."
    )
    mae: MetricChange | None = Field(
        default=None, description="Mean absolute error of both (float targets)."
    )
    exact_match: MetricChange | None = Field(
        default=None, description="Share of sequences predicted exactly, both (sequence labels)."
    )
    position_accuracy: MetricChange | None = Field(
        default=None,
        description="Share of labelled positions predicted right, both (sequence labels).",
    )


class ErrorStats(MetricsModel):
    """How far test values are from reference values; inf/nan positions left out."""

    max_abs_error: float = Field(description="Largest |reference - test|.")
    mean_abs_error: float = Field(description="Mean |reference - test|.")
    cosine_similarity: float = Field(description="Cosine of the flattened values, in [-1, 1].")
    relative_error: float | None = Field(
        default=None,
        description="||reference - test|| / ||reference||; absent for a zero reference.",
    )
    sqnr_db: float | None = Field(
        default=None,
        description="Signal to quantization noise ratio in dB; absent when it is infinite.",
    )


class Fidelity(ErrorStats):
    """The compressed model's outputs against the original's, on the same inputs."""

    samples: int = Field(description="Evaluation inputs both models ran.")
    top1_agreement: float | None = Field(
        default=None,
        description="Share of samples with the same argmax class (classifier outputs only).",
    )
    position_agreement: float | None = Field(
        default=None,
        description="Share of positions with the same argmax class (sequence score outputs "
        "[1, positions, classes] only).",
    )
    sequence_agreement: float | None = Field(
        default=None,
        description="Share of samples whose CTC-decoded sequence is the same (sequence score "
        "outputs, with the objective's blank_index).",
    )
    nonfinite_mismatches: int | None = Field(
        default=None, description="Values inf/nan on one side only; absent when none."
    )
    inputs: Literal["dataset", "synthetic"] = Field(
        description="Whether the inputs came from the evaluation dataset or were drawn."
    )


class QuantizationError(MetricsModel):
    """|original weight - dequantized weight| over every matched weight tensor."""

    mean_abs: float = Field(description="Mean absolute weight error.")
    max_abs: float = Field(description="Largest absolute weight error.")
    tensors: int = Field(description="Weight tensors compared (rows in the job's report).")


class ModelMetrics(MetricsModel):
    """One model's block: size, compute, speed and memory; alone, also accuracy and host."""

    size_bytes: int = Field(description="Model file size, external data included.")
    param_count: int = Field(description="Parameters in the model's weights.")
    flops: int | None = Field(
        default=None,
        description="Multiply-accumulates of one run at the benchmark shapes; absent when "
        "some shape is unknown.",
    )
    input_shapes: dict[str, list[int]] | None = Field(
        default=None,
        description="The benchmark shapes: each input's shape in the timed runs, symbolic dims "
        "resolved (from the job's input_shapes, or the default dim).",
    )
    latency_ms: LatencyStats = Field(description="Run times at the benchmark shapes.")
    runs: int = Field(description="Timed runs (fewer than asked when the time budget ran out).")
    load_ms: float = Field(description="Time to load, optimize and initialize the session.")
    throughput_per_s: float | None = Field(
        default=None, description="Samples per second, from the mean run time."
    )
    batch_size: int | None = Field(
        default=None, description="Batch of the timed runs; absent without a batch axis."
    )
    throughput_by_batch: dict[str, float] | None = Field(
        default=None, description="Samples per second at each extra batch size asked for."
    )
    peak_rss_mb: float | None = Field(
        default=None, description="Peak resident memory of loading and running it, MiB."
    )
    rss_before_load_mb: float | None = Field(
        default=None, description="Resident memory of the measuring process before the load, MiB."
    )
    accuracy: ModelAccuracy | None = Field(
        default=None, description="Accuracy against labels (single-model benchmarks)."
    )
    host: Host | None = Field(default=None, description="Where it ran (single-model benchmarks).")
    warnings: list[str] | None = Field(
        default=None, description="What makes these numbers doubtful; absent when nothing does."
    )


class Metrics(MetricsModel):
    """The job's metrics: both models measured in one process, interleaved, and compared."""

    original: ModelMetrics = Field(description="The original (baseline) model's block.")
    compressed: ModelMetrics = Field(description="The compressed model's block.")
    compression_ratio: float = Field(description="original size_bytes / compressed size_bytes.")
    speedup_ratio: float = Field(description="original p50 latency / compressed p50 latency.")
    pruning_rate: float = Field(description="Weights zeroed or removed / original weights.")
    sparsity: float = Field(description="Zero weights / weights of the compressed model.")
    quantization_error: QuantizationError | None = Field(
        default=None, description="Weight error of the compressed model's stored weights."
    )
    fidelity: Fidelity | None = Field(
        default=None, description="Output error of the compressed model against the original."
    )
    accuracy: Accuracy | None = Field(
        default=None, description="Task accuracy of both; only with a labelled eval dataset."
    )
    host: Host = Field(description="Where both models ran.")
    warnings: list[str] | None = Field(
        default=None, description="What makes these numbers doubtful; absent when nothing does."
    )


class WeightErrorRow(MetricsModel):
    """One weight tensor of the compressed model against the original's."""

    name: str = Field(description="The original model's tensor.")
    stored_as: str = Field(description="The compressed model's tensor holding it.")
    kind: str = Field(description="How it is stored: the decoding op, float16 or codebook.")
    shape: list[int] = Field(description="The original tensor's shape.")
    mean_abs: float = Field(description="Mean |w - dequant(w)|.")
    max_abs: float = Field(description="Largest |w - dequant(w)|.")
    relative_error: float = Field(description="||w - dequant(w)|| / ||w||.")


class WeightErrorReport(MetricsModel):
    """Every weight tensor's error, worst relative error first, and the overall summary."""

    tensors: list[WeightErrorRow] = Field(description="One row per matched tensor.")
    unmatched: list[str] = Field(description="Compressed tensors with no original counterpart.")
    mean_abs: float | None = Field(
        default=None, description="Mean error over all matched weights; absent when none."
    )
    max_abs: float | None = Field(
        default=None, description="Largest error over all matched weights; absent when none."
    )

    def summary(self) -> QuantizationError | None:
        """The metrics' quantization_error block; None when no tensor matched."""
        if self.mean_abs is None or self.max_abs is None:
            return None
        return QuantizationError(
            mean_abs=self.mean_abs, max_abs=self.max_abs, tensors=len(self.tensors)
        )


class NodeSensitivityRow(ErrorStats):
    """One quantized node's output against the original model's same tensor."""

    node: str = Field(description="The compressed model's node.")
    op_type: str = Field(description="Its operator.")
    tensor: str = Field(description="The original model's tensor compared.")
    compared_with: str = Field(description="The compressed model's tensor compared with it.")


class PairMeasurement(BaseModel):
    """What benchmark_pair returns: the metrics, and the per-tensor rows for the report."""

    metrics: Metrics = Field(description="The job's metrics block.")
    weights: list[WeightErrorRow] = Field(
        default_factory=list, description="Per weight tensor error, worst first."
    )
