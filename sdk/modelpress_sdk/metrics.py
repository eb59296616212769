"""A job's metrics as typed models: both models' blocks, their comparison, and its parts.

They mirror the server's metrics (GET /v1/jobs/{id} `metrics`). A field that is None was not
measured (no labels, no batch axis, no procfs...): the server leaves it out of the JSON.
"""

from __future__ import annotations

from modelpress_sdk.base import ApiModel, OpenEnum


class AccuracyMetric(OpenEnum):
    """The primary accuracy metric that fits the evaluation dataset's labels."""

    TOP1 = "top1"  # integer class labels
    EXACT_MATCH = "exact_match"  # integer sequence labels, with a CTC blank index
    POSITION_ACCURACY = "position_accuracy"  # integer sequence labels, without one
    MSE = "mse"  # float targets


class FidelityInputs(OpenEnum):
    DATASET = "dataset"  # the evaluation dataset's inputs
    SYNTHETIC = "synthetic"  # inputs drawn at random


class LatencyStats(ApiModel):
    """Run times of one model in milliseconds; a cv above 0.25 is noisy."""

    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    cv: float


class Host(ApiModel):
    """Where the numbers were measured: they only compare on the same fingerprint."""

    cpu: str
    cores: int  # intra-op threads the sessions ran with
    cpu_count: int | None = None
    onnxruntime: str
    provider: str
    features: list[str] | None = None  # avx2, avx512_vnni, ...; None when unknown


class ModelAccuracy(ApiModel):
    """Task accuracy of one model against the evaluation dataset's labels."""

    metric: AccuracyMetric
    value: float
    samples: int
    top5: float | None = None
    mae: float | None = None
    exact_match: float | None = None
    position_accuracy: float | None = None


class MetricChange(ApiModel):
    """One metric on both models; delta is compressed - original."""

    original: float
    compressed: float
    delta: float


class Accuracy(ApiModel):
    """Task accuracy of both models; delta is compressed - original (negative top1 is a loss)."""

    metric: AccuracyMetric
    original: float
    compressed: float
    delta: float
    samples: int
    top5: MetricChange | None = None
    mae: MetricChange | None = None
    exact_match: MetricChange | None = None
    position_accuracy: MetricChange | None = None


class Fidelity(ApiModel):
    """The compressed model's outputs against the original's, on the same inputs."""

    max_abs_error: float
    mean_abs_error: float
    cosine_similarity: float
    relative_error: float | None = None
    sqnr_db: float | None = None  # None when infinite (identical outputs)
    samples: int
    top1_agreement: float | None = None
    position_agreement: float | None = None
    sequence_agreement: float | None = None
    nonfinite_mismatches: int | None = None
    inputs: FidelityInputs


class QuantizationError(ApiModel):
    """|original weight - dequantized weight| over every matched weight tensor."""

    mean_abs: float
    max_abs: float
    tensors: int


class ModelMetrics(ApiModel):
    """One model's block: size, compute, speed and memory; alone, also accuracy and host.

    Also the whole of a single-model benchmark's metrics.
    """

    size_bytes: int
    param_count: int
    flops: int | None = None
    input_shapes: dict[str, list[int]] | None = None
    latency_ms: LatencyStats
    runs: int
    load_ms: float
    throughput_per_s: float | None = None
    batch_size: int | None = None
    throughput_by_batch: dict[str, float] | None = None
    peak_rss_mb: float | None = None
    rss_before_load_mb: float | None = None
    accuracy: ModelAccuracy | None = None
    host: Host | None = None
    warnings: list[str] | None = None


class Metrics(ApiModel):
    """A compress job's metrics (or a benchmark's against a baseline): both models, compared."""

    original: ModelMetrics
    compressed: ModelMetrics
    compression_ratio: float  # original size_bytes / compressed size_bytes
    speedup_ratio: float  # original p50 / compressed p50
    pruning_rate: float
    sparsity: float
    quantization_error: QuantizationError | None = None
    fidelity: Fidelity | None = None
    accuracy: Accuracy | None = None  # only with a labelled evaluation dataset
    host: Host
    warnings: list[str] | None = None
