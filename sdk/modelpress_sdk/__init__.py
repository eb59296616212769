"""Python SDK of the ModelPress API: upload ONNX models, compress them, wait, download.

from modelpress_sdk import Client

with Client("http://127.0.0.1:8000", api_key="...") as mp:
    model = mp.upload_model("model.onnx")
    job = mp.compress(model, preset="int8-dynamic").wait()
    job.download("model-int8.onnx")
"""

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
from modelpress_sdk.retry import RetryEvent, RetryPolicy
from modelpress_sdk.types import (
    TERMINAL_STATUSES,
    ArrayInfo,
    Candidate,
    Dataset,
    JobError,
    JobReport,
    Model,
    Preset,
    TensorSpec,
    UploadPart,
    UploadTicket,
)

__all__ = [
    "DEFAULT_URL",
    "DIRECT_UPLOAD_THRESHOLD_BYTES",
    "TERMINAL_STATUSES",
    "ApiError",
    "ArrayInfo",
    "Candidate",
    "Client",
    "Dataset",
    "IntegrityError",
    "Job",
    "JobError",
    "JobFailed",
    "JobReport",
    "Model",
    "ModelPressError",
    "Preset",
    "RetryEvent",
    "RetryPolicy",
    "TensorSpec",
    "UploadPart",
    "UploadTicket",
    "WaitTimeout",
    "parse_retry_after",
]
