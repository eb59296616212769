"""Python SDK of the ModelPress API: upload ONNX models, compress them, wait, download.

from modelpress_sdk import Client

with Client("http://127.0.0.1:8000", api_key="...") as mp:
    model = mp.upload_model("model.onnx")
    job = mp.compress(model, preset="int8-dynamic").wait()
    job.download("model-int8.onnx")
"""

from modelpress_sdk.base import OpenEnum
from modelpress_sdk.client import DEFAULT_URL, DIRECT_UPLOAD_THRESHOLD_BYTES, Client
from modelpress_sdk.errors import (
    ApiError,
    IntegrityError,
    JobFailed,
    ModelPressError,
    WaitTimeout,
    parse_retry_after,
)
from modelpress_sdk.jobs import Job
from modelpress_sdk.metrics import (
    Accuracy,
    AccuracyMetric,
    Fidelity,
    FidelityInputs,
    Host,
    LatencyStats,
    MetricChange,
    Metrics,
    ModelAccuracy,
    ModelMetrics,
    QuantizationError,
)
from modelpress_sdk.retry import RetryEvent, RetryPolicy
from modelpress_sdk.types import (
    TERMINAL_STATUSES,
    ArrayInfo,
    BenchmarkOptions,
    Candidate,
    Dataset,
    JobError,
    JobKind,
    JobReport,
    JobStatus,
    Model,
    Preset,
    Recipe,
    TensorSpec,
    UploadPart,
    UploadTicket,
    Verdict,
)

__all__ = [
    "DEFAULT_URL",
    "DIRECT_UPLOAD_THRESHOLD_BYTES",
    "TERMINAL_STATUSES",
    "Accuracy",
    "AccuracyMetric",
    "ApiError",
    "ArrayInfo",
    "BenchmarkOptions",
    "Candidate",
    "Client",
    "Dataset",
    "Fidelity",
    "FidelityInputs",
    "Host",
    "IntegrityError",
    "Job",
    "JobError",
    "JobFailed",
    "JobKind",
    "JobReport",
    "JobStatus",
    "LatencyStats",
    "MetricChange",
    "Metrics",
    "Model",
    "ModelAccuracy",
    "ModelMetrics",
    "ModelPressError",
    "OpenEnum",
    "Preset",
    "QuantizationError",
    "Recipe",
    "RetryEvent",
    "RetryPolicy",
    "TensorSpec",
    "UploadPart",
    "UploadTicket",
    "Verdict",
    "WaitTimeout",
    "parse_retry_after",
]
