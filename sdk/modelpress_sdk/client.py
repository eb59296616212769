"""The ModelPress client: upload models and data, start jobs, list and fetch what is stored."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from modelpress_sdk.errors import ModelPressError, parse_retry_after
from modelpress_sdk.jobs import Job
from modelpress_sdk.retry import RetryPolicy
from modelpress_sdk.transport import Progress, ProgressFile, Transport
from modelpress_sdk.types import Dataset, JobReport, Model, Preset, parse
from modelpress_sdk.uploads import upload_direct

DEFAULT_URL = "http://127.0.0.1:8000"
DIRECT_UPLOAD_THRESHOLD_BYTES = 64 * 1024 * 1024
PAGE_SIZE = 100

T = TypeVar("T", bound=BaseModel)
ModelRef = Model | str
DatasetRef = Dataset | Path | str


class Client:
    """A connection to a ModelPress server.

    `url` and `api_key` default to `MODELPRESS_URL` (else http://127.0.0.1:8000) and
    `MODELPRESS_API_KEY`. Requests that meet a 429, 502, 503, 504 or a lost connection are
    retried up to `max_retries` times with exponential backoff and jitter, honouring
    `Retry-After` (see `RetryPolicy`); every creating POST carries one `Idempotency-Key` across
    its retries, so a retry never creates anything twice.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 4,
        retry: RetryPolicy | None = None,
        direct_upload_threshold_bytes: int = DIRECT_UPLOAD_THRESHOLD_BYTES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("MODELPRESS_URL") or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("MODELPRESS_API_KEY")
        self.retry = retry or RetryPolicy(max_retries=max_retries)
        self.timeout = timeout
        # Models at least this large go straight to storage (POST /v1/uploads, then a PUT).
        self.direct_upload_threshold_bytes = direct_upload_threshold_bytes
        self._t = Transport(self.url, key or None, timeout, self.retry, transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool; Jobs fetched by this client can no longer be refreshed."""
        self._t.close()

    @property
    def retry(self) -> RetryPolicy:
        return self._retry

    @retry.setter
    def retry(self, policy: RetryPolicy) -> None:
        self._retry = policy
        if hasattr(self, "_t"):
            self._t.policy = policy

    # ---- models ----

    def upload_model(
        self, path: str | Path, name: str | None = None, *, progress: Progress | None = None
    ) -> Model:
        """Upload an .onnx (or a .zip with external data); `progress(sent, total)` is called
        before each chunk. Files of `direct_upload_threshold_bytes` or more go to storage
        directly (POST /v1/uploads); smaller ones as a multipart POST /v1/models."""
        path = Path(path)
        if path.stat().st_size >= self.direct_upload_threshold_bytes:
            return upload_direct(self._t, path, name, progress)
        return parse(
            Model,
            self._t.json(
                "POST",
                "/v1/models",
                idempotent_create=True,
                data={"name": name} if name else {},
                per_attempt=_form_file(path, progress),
            ),
        )

    def get_model(self, model_id: str) -> Model:
        return parse(Model, self._t.json("GET", f"/v1/models/{model_id}"))

    def list_models(self, *, parent_id: str | None = None) -> Iterator[Model]:
        """Every model, newest first (`parent_id`: the outputs made from one model)."""
        return self._pages("/v1/models", Model, {"parent_id": parent_id})

    def delete_model(self, model: ModelRef) -> None:
        self._t.send("DELETE", f"/v1/models/{_id(model)}")

    def download_model(self, model: ModelRef, path: str | Path, *, zstd: bool = False) -> Path:
        """Write a model's bytes to path (a folder: `<id>.onnx` in it), checking its sha256
        (with zstd=True: the `.zst` transport coding, unchecked). Returns the file written."""
        model_id = _id(model)
        dest = Path(path)
        if dest.is_dir():
            dest = dest / f"{model_id}.onnx{'.zst' if zstd else ''}"
        self._t.download(
            f"/v1/models/{model_id}/download",
            dest,
            params={"encoding": "zstd"} if zstd else None,
            expected_sha256=lambda: self.get_model(model_id).sha256,
            verify=not zstd,
        )
        return dest

    # ---- datasets ----

    def upload_dataset(self, path: str | Path, *, progress: Progress | None = None) -> Dataset:
        """Upload an .npz of named arrays (calibration or evaluation data)."""
        return parse(
            Dataset,
            self._t.json(
                "POST",
                "/v1/datasets",
                idempotent_create=True,
                per_attempt=_form_file(Path(path), progress),
            ),
        )

    def get_dataset(self, dataset_id: str) -> Dataset:
        return parse(Dataset, self._t.json("GET", f"/v1/datasets/{dataset_id}"))

    def list_datasets(self) -> Iterator[Dataset]:
        return self._pages("/v1/datasets", Dataset, {})

    def delete_dataset(self, dataset: Dataset | str) -> None:
        self._t.send("DELETE", f"/v1/datasets/{_id(dataset)}")

    # ---- jobs ----

    def presets(self) -> list[Preset]:
        """Every preset and the recipe it expands to."""
        items = self._t.json("GET", "/v1/presets").get("items") or []
        return [parse(Preset, item) for item in items]

    def compress(
        self,
        model: ModelRef,
        preset: str | None = None,
        recipe: Mapping[str, Any] | list[Any] | None = None,
        *,
        calibration: DatasetRef | None = None,
        evaluation: DatasetRef | None = None,
        input_shapes: Mapping[str, list[int]] | None = None,
        input_values: Mapping[str, Any] | None = None,
        objective: Mapping[str, Any] | None = None,
        benchmark: Mapping[str, Any] | None = None,
        webhook: str | None = None,
        webhook_events_filter: list[str] | None = None,
    ) -> Job:
        """Start a compression job: a preset (`"auto"` searches) or a recipe (`{"passes":
        [...]}`, or the list of passes). `calibration`/`evaluation`: a Dataset, a dataset id,
        or a path to an .npz that is uploaded first."""
        if (preset is None) == (recipe is None):
            raise ValueError("give exactly one of preset or recipe")
        body: dict[str, Any] = {"model_id": _id(model)}
        if recipe is not None:
            body["recipe"] = {"passes": list(recipe)} if isinstance(recipe, list) else dict(recipe)
        else:
            body["preset"] = preset
        body.update(
            _present(
                calibration_dataset_id=self._dataset_id(calibration),
                eval_dataset_id=self._dataset_id(evaluation),
                input_shapes=input_shapes,
                input_values=input_values,
                objective=objective,
                benchmark=benchmark,
                webhook=webhook,
                webhook_events_filter=webhook_events_filter,
            )
        )
        return self._job("POST", "/v1/jobs", json=body, idempotent_create=True)

    def benchmark(
        self,
        model: ModelRef,
        *,
        baseline: ModelRef | None = None,
        evaluation: DatasetRef | None = None,
        input_shapes: Mapping[str, list[int]] | None = None,
        input_values: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Measure a stored model, alone or against a baseline (POST /v1/benchmarks);
        `options`: runs, warmup, threads, provider, graph_optimization_level, batch_sizes."""
        body = _present(
            model_id=_id(model),
            baseline_model_id=_id(baseline) if baseline is not None else None,
            eval_dataset_id=self._dataset_id(evaluation),
            input_shapes=input_shapes,
            input_values=input_values,
            **options,
        )
        return self._job("POST", "/v1/benchmarks", json=body, idempotent_create=True)

    def get_job(self, job_id: str, *, retry: RetryPolicy | None = None) -> Job:
        return self._job("GET", f"/v1/jobs/{job_id}", policy=retry)

    def list_jobs(
        self,
        *,
        status: str | None = None,
        model_id: str | None = None,
        parent_job_id: str | None = None,
    ) -> Iterator[Job]:
        """Every job, newest first, optionally by status, model or auto job (its candidates)."""
        params = {"status": status, "model_id": model_id, "parent_job_id": parent_job_id}
        for job in self._pages("/v1/jobs", Job, params):
            yield job.bind(self)

    def cancel_job(self, job_id: str, *, into: Job | None = None) -> Job:
        """Cancel a queued or running job (a finished one is returned as it is)."""
        data = self._t.json("POST", f"/v1/jobs/{job_id}/cancel")
        if into is not None:
            _update_in_place(into, parse(Job, data))
            return into
        return parse(Job, data).bind(self)

    def get_job_report(self, job_id: str) -> JobReport:
        return parse(JobReport, self._t.json("GET", f"/v1/jobs/{job_id}/report"))

    def poll_job(
        self, job: Job, *, wait_s: int = 0, retry: RetryPolicy | None = None
    ) -> tuple[bool, float | None]:
        """Fetch `job` again into itself, long-polling up to wait_s seconds for a change.

        Returns whether it changed, and the `Retry-After` the server sent, if any.
        """
        headers = {"If-None-Match": job._etag} if job._etag else {}
        resp = self._t.send(
            "GET",
            f"/v1/jobs/{job.id}",
            params={"wait": wait_s} if wait_s > 0 else None,
            headers=headers,
            # The server holds a long poll for up to wait_s: the read must outlast it.
            timeout=httpx.Timeout(self.timeout + wait_s, connect=min(10.0, self.timeout)),
            policy=retry,
        )
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if resp.status_code == 304:
            return False, retry_after
        fresh = parse(Job, resp.json())
        etag = resp.headers.get("ETag")
        changed = etag != job._etag if etag else fresh.model_dump() != job.model_dump()
        _update_in_place(job, fresh)
        job._etag = etag
        return changed, retry_after

    # ---- internals ----

    def _job(self, method: str, url: str, **kwargs: Any) -> Job:
        resp = self._t.send(method, url, **kwargs)
        return parse(Job, resp.json()).bind(self, resp.headers.get("ETag"))

    def _pages(self, url: str, item: type[T], params: Mapping[str, Any]) -> Iterator[T]:
        query = {k: v for k, v in params.items() if v is not None}
        query["limit"] = PAGE_SIZE
        while True:
            page = self._t.json("GET", url, params=query)
            for row in page.get("items") or []:
                yield parse(item, row)
            if not page.get("next_cursor"):
                return
            query["cursor"] = page["next_cursor"]

    def _dataset_id(self, value: DatasetRef | None) -> str | None:
        """A dataset's id; a Path (or a str naming an .npz or an existing file) is uploaded."""
        if value is None or isinstance(value, Dataset):
            return value.id if value is not None else None
        if isinstance(value, Path) or value.endswith(".npz") or os.path.isfile(value):
            return self.upload_dataset(value).id
        return value


def _form_file(path: Path, progress: Progress | None) -> Any:
    """Per attempt: the file as a multipart form field, opened anew and closed after."""
    if not path.is_file():
        raise ModelPressError(f"no such file: {path}")

    def files(stack: ExitStack) -> dict[str, Any]:
        fh = stack.enter_context(ProgressFile(path, progress))
        return {"files": {"file": (path.name, fh, "application/octet-stream")}}

    return files


def _id(value: Any) -> str:
    return value if isinstance(value, str) else str(value.id)


def _present(**fields: Any) -> dict[str, Any]:
    return {
        k: (dict(v) if isinstance(v, Mapping) else v) for k, v in fields.items() if v is not None
    }


def _update_in_place(target: BaseModel, fresh: BaseModel) -> None:
    target.__dict__.update(fresh.__dict__)
    object.__setattr__(target, "__pydantic_extra__", fresh.__pydantic_extra__)
    object.__setattr__(target, "__pydantic_fields_set__", set(fresh.__pydantic_fields_set__))
