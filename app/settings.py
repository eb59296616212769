"""Runtime settings, read from MODELPRESS_* environment variables."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.compression.measure.options import BenchmarkOptions

_BENCHMARK_DEFAULTS = BenchmarkOptions()  # the one place the benchmark's defaults are spelled


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELPRESS_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path(".modelpress-data"),
        description="Folder for the embedded default: SQLite database, broker and model files.",
    )
    database_url: str = Field(
        default="", description="SQLAlchemy URL; empty means SQLite inside data_dir."
    )
    storage_url: str = Field(
        default="", description="s3://bucket/prefix or file:///path; empty means data_dir/storage."
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="Endpoint of an S3-compatible store (MinIO, moto); None for AWS."
    )
    s3_region: str = "us-east-1"
    broker_url: str = Field(
        default="", description="Celery broker; empty means kombu's SQLAlchemy transport on SQLite."
    )
    queue_name: str = Field(default="modelpress", description="Celery queue for compression jobs.")
    benchmark_queue_name: str = Field(
        default="modelpress-benchmark",
        description="Celery queue for benchmarks; its workers run one job at a time.",
    )

    webhook_queue_name: str = Field(
        default="",
        description="Celery queue for webhook deliveries, served by a worker of its own so a "
        "delivery never waits behind a long job; empty means `<queue_name>-webhooks`.",
    )

    max_upload_bytes: int = Field(default=2 * 1024**3, description="Largest accepted upload.")
    max_json_bytes: int = Field(
        default=1024 * 1024, description="Largest JSON request body (413 past it)."
    )
    max_models_per_tenant: int = Field(default=1000, description="Stored models per tenant.")
    max_active_jobs_per_tenant: int = Field(
        default=20, description="Queued plus running jobs per tenant."
    )
    job_submissions_per_minute: int = Field(
        default=120, description="Jobs (and benchmarks) a tenant may submit per minute."
    )
    job_time_limit_s: int = Field(default=1800, description="Wall-time limit of one job.")
    heartbeat_interval_s: float = Field(
        default=10.0, description="How often a running job renews its lease."
    )
    heartbeat_timeout_s: float = Field(
        default=60.0, description="A running job silent this long has lost its worker."
    )
    max_attempts: int = Field(
        default=3, description="Runs of a job before a lost worker fails it with worker_lost."
    )
    queued_resend_after_s: float = Field(
        default=600.0,
        description="A job queued this long since it was sent, or handed to the benchmark queue "
        "this long ago and not picked up, is sent again in case the broker lost the message; a "
        "duplicate delivery is harmless.",
    )
    reaper_interval_s: float = Field(
        default=15.0, description="How often each worker looks for lost jobs and the outbox."
    )
    storage_retries: int = Field(
        default=5,
        ge=0,
        description="Retries of a job stage that storage failed, before the job fails with "
        "storage_unavailable.",
    )
    storage_retry_backoff_s: float = Field(
        default=10.0, ge=0, description="Wait before the first such retry; doubles on each one."
    )
    s3_max_attempts: int = Field(
        default=5, ge=1, description="Attempts of one S3 call (boto3 standard retries)."
    )
    leftover_grace_s: float = Field(
        default=3600.0,
        ge=0,
        description="Leftovers of crashes (temp files, unreferenced stored objects, incomplete "
        "multipart uploads) untouched this long are removed; work folders never before the job "
        "time limit has passed.",
    )
    leftover_sweep_interval_s: float = Field(
        default=600.0, gt=0, description="How often each worker sweeps for leftovers."
    )
    upload_expiry_s: float = Field(
        default=86400.0,
        gt=0,
        description="A direct upload (POST /v1/uploads) not registered this long after it began "
        "expires; the leftover sweep removes what was staged for it.",
    )
    upload_part_bytes: int = Field(
        default=64 * 1024**2,
        ge=5 * 1024**2,
        description="A direct upload to S3 larger than this is sent in parts of this size "
        "(S3's smallest part is 5 MiB).",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL clients reach the API at, for the upload URLs it hands out on "
        "local storage; unset: the URL of the request.",
    )
    retention_days: float = Field(
        default=0.0,
        ge=0,
        description="Models, datasets and finished jobs older than this many days are deleted "
        "by the leftover sweep (never what a queued or running job uses); 0: kept forever.",
    )
    job_memory_limit_mb: int = Field(
        default=8192, description="Address-space limit of the child process that runs a pass."
    )
    default_symbolic_dim: int = Field(
        default=1, description="Value given to a symbolic input dim that input_shapes leaves open."
    )
    pass_check_samples: int = Field(
        default=16,
        ge=0,
        description="Calibration samples on which each pass's output is compared with its input "
        "(a warning names the worst nodes when it collapses); 0 turns the check off.",
    )
    benchmark_runs: int = Field(
        default=_BENCHMARK_DEFAULTS.runs, description="Timed runs of a job that gives none."
    )
    benchmark_warmup: int = Field(
        default=_BENCHMARK_DEFAULTS.warmup, description="Warm-up runs of a job that gives none."
    )
    benchmark_threads: int = Field(
        default=_BENCHMARK_DEFAULTS.threads, description="Threads of a job that gives none."
    )
    benchmark_time_budget_s: float = Field(
        default=30.0,
        description="Upper bound on one benchmark's measuring: warm-up, timed runs, batch sizes, "
        "memory probes and evaluation together (loading the models comes on top).",
    )
    auth_required: bool | None = Field(
        default=None,
        description="Require API keys. Unset: on for production settings, off when embedded. "
        "Production settings refuse to start with it off.",
    )
    presign_downloads: bool = Field(
        default=False, description="Answer downloads from S3 with a redirect to a presigned URL."
    )
    body_read_timeout_s: float = Field(
        default=60.0,
        description="A request body that sends nothing for this long is answered 408 and dropped.",
    )
    metrics_token: str | None = Field(
        default=None,
        description="Bearer token GET /metrics requires. Unset: /metrics answers only when API "
        "keys are off (the embedded default).",
    )
    max_concurrent_validations: int = Field(
        default=2, ge=1, description="Uploaded models validated at once by one API process."
    )
    validation_wait_s: float = Field(
        default=30.0,
        description="How long an upload waits for a free validation slot before a 503.",
    )
    validation_memory_limit_mb: int = Field(
        default=8192, description="Address-space limit of the child process that checks an upload."
    )
    validation_time_limit_s: float = Field(
        default=300.0, description="Wall-time limit of the child process that checks an upload."
    )

    webhook_timeout_s: float = Field(
        default=10.0, gt=0, description="How long one webhook delivery attempt may take."
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Attempts of one webhook event before it is given up."
    )
    webhook_retry_backoff_s: float = Field(
        default=10.0,
        ge=0,
        description="Wait before the second attempt of a webhook event; doubles on each one.",
    )
    webhook_retry_max_backoff_s: float = Field(
        default=600.0,
        ge=0,
        le=1800,
        description="Longest wait between two attempts (kept well under the broker's visibility "
        "timeout, so a retry waiting in a worker is never delivered twice by Redis).",
    )
    webhook_resend_after_s: float = Field(
        default=120.0,
        gt=0,
        description="A webhook attempt due this long ago and not made is sent to the queue "
        "again (its message was lost); a duplicate message sends nothing.",
    )
    webhook_allow_loopback: bool | None = Field(
        default=None,
        description="Deliver webhooks to loopback addresses (127.0.0.1, ::1, localhost). Unset: "
        "on for the embedded default, off otherwise.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Deliver webhooks to private addresses (10/8, 172.16/12, 192.168/16, fc00::/7, "
        "100.64/10). Link-local addresses (169.254/16, cloud metadata) are always refused.",
    )

    log_format: Literal["json", "console"] | None = Field(
        default=None,
        description="Log lines as JSON objects or human-readable text. Unset: json for the API "
        "and workers, console for `modelpress serve`.",
    )
    log_level: str = Field(default="INFO", description="Lowest level of log lines written.")

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> "Settings":
        data_dir = self.data_dir.resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{data_dir / 'modelpress.db'}"
        if not self.storage_url:
            self.storage_url = (data_dir / "storage").as_uri()
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{data_dir / 'broker.db'}"
        if not self.webhook_queue_name:
            self.webhook_queue_name = f"{self.queue_name}-webhooks"
        return self

    @property
    def is_embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def webhook_loopback_allowed(self) -> bool:
        if self.webhook_allow_loopback is not None:
            return self.webhook_allow_loopback
        return self.is_embedded

    @property
    def auth_enabled(self) -> bool:
        return self.auth_required if self.auth_required is not None else not self.is_embedded

    def check_safe_to_serve(self) -> None:
        """Refuse to run a shared (non-embedded) deployment without API keys."""
        if not self.is_embedded and not self.auth_enabled:
            raise RuntimeError(
                "MODELPRESS_AUTH_REQUIRED=false is only allowed on the embedded default; "
                "a deployment on Postgres must use API keys"
            )


@lru_cache
def get_settings() -> Settings:
    return Settings()
