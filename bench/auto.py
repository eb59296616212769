"""Auto against every preset and against plain onnxruntime.quantization defaults, on test models.

    .venv/bin/python bench/auto.py [--models mlp,cnn] [--runs 20] [--max-drop 0.1]

Starts the production shape on loopback (uvicorn and Celery workers on the local Postgres, a
database of its own, and Redis database 13; files in a temporary folder). Every model gets labelled
evaluation data (its own answers on seeded random inputs, so a label change is a loss) and the
CNN calibration data. Per model it runs: the auto search on one worker, then on two (the search
time of each), every preset as a plain job with the same objective (its verdict), and
`quantize_dynamic` / `quantize_static` with their defaults, measured by a benchmark job against
the original. Prints one Markdown table per model.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import onnxruntime as ort  # noqa: E402
from onnxruntime.quantization import (  # noqa: E402
    CalibrationDataReader,
    quantize_dynamic,
    quantize_static,
)

from app.compression.passes.recipes import PRESETS  # noqa: E402
from tests.builders import build_cnn_residual, build_mlp  # noqa: E402
from tests.stack import LiveStack, standalone_stack  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
BROKER = "redis://127.0.0.1:6379/13"
# Each model's builder and the shape of one input sample.
MODELS = {"mlp": (build_mlp, (256,)), "cnn": (build_cnn_residual, (3, 32, 32))}


def start_stack(workdir: Path) -> LiveStack:
    return standalone_stack(
        workdir,
        "auto_bench",
        pg_url=PG,
        broker_url=BROKER,
        env={
            "MODELPRESS_REAPER_INTERVAL_S": "2",
            "MODELPRESS_MAX_ACTIVE_JOBS_PER_TENANT": "100",
            "MODELPRESS_JOB_SUBMISSIONS_PER_MINUTE": "1000",
        },
    )


def data_files(name: str, model: Path, workdir: Path) -> tuple[Path, Path]:
    """(calibration, eval): seeded inputs; eval labelled with the model's own answers."""
    shape = MODELS[name][1]
    inputs = np.random.default_rng(1).random((64, *shape), dtype=np.float32)
    session = ort.InferenceSession(str(model))
    input_name = session.get_inputs()[0].name
    labels = session.run(None, {input_name: inputs})[0].argmax(axis=1).astype(np.int64)
    calibration, evaluation = workdir / f"{name}-calib.npz", workdir / f"{name}-eval.npz"
    np.savez(calibration, **{input_name: inputs[:16]})
    np.savez(evaluation, **{input_name: inputs, "labels": labels})
    return calibration, evaluation


class Reader(CalibrationDataReader):
    def __init__(self, path: Path) -> None:
        with np.load(path) as data:
            self.rows = [{k: data[k][i : i + 1] for k in data.files} for i in range(16)]

    def get_next(self) -> dict[str, np.ndarray] | None:
        return self.rows.pop() if self.rows else None


def upload(client: httpx.Client, path: Path, endpoint: str = "/v1/models") -> str:
    response = client.post(endpoint, files={"file": (path.name, path.read_bytes())})
    response.raise_for_status()
    return str(response.json()["id"])


def wait(stack: LiveStack, client: httpx.Client, job_id: str) -> dict[str, Any]:
    return dict(stack.wait_for_job(client, job_id, timeout_s=1800))


def row(label: str, job: dict[str, Any], seconds: float | None = None) -> str:
    metrics = job.get("metrics") or {}
    accuracy = metrics.get("accuracy") or {}
    delta = (job.get("verdict_detail") or {}).get("delta", accuracy.get("delta"))
    cells = [
        label,
        job["status"] + (f" ({job['error']['code']})" if job.get("error") else ""),
        f"{metrics['compression_ratio']:.2f}x" if "compression_ratio" in metrics else "-",
        f"{metrics['speedup_ratio']:.2f}x" if "speedup_ratio" in metrics else "-",
        f"{delta * 100:+.1f}" if isinstance(delta, int | float) else "-",
        job.get("verdict") or "-",
        f"{seconds:.0f} s" if seconds is not None else "",
    ]
    return "| " + " | ".join(cells) + " |"


def bench_model(stack: LiveStack, name: str, workdir: Path, args: argparse.Namespace) -> None:
    source = MODELS[name][0](workdir / f"{name}.onnx")
    calibration, evaluation = data_files(name, source, workdir)
    with stack.client() as client:
        model_id = upload(client, source)
        data = {
            "calibration_dataset_id": upload(client, calibration, "/v1/datasets"),
            "eval_dataset_id": upload(client, evaluation, "/v1/datasets"),
        }
        common = {"model_id": model_id, "benchmark": {"runs": args.runs}, **data}
        objective = {"max_accuracy_drop": args.max_drop}
        print(f"\n### {name}\n\n| job | status | size | speedup | delta (points) | verdict | "
              "search time |\n| --- | --- | --- | --- | --- | --- | --- |")  # fmt: skip
        for workers in (1, 2):
            if workers == 2:
                stack.start_worker(name="second-worker")
            started = time.monotonic()
            body = {**common, "preset": "auto", "objective": objective}
            job = wait(stack, client, client.post("/v1/jobs", json=body).json()["id"])
            elapsed = time.monotonic() - started
            best = next((c["label"] for c in job["candidates"] if c["recommended"]), "none")
            print(row(f"auto, {workers} worker(s): {best}", job, elapsed))
        for preset in PRESETS:
            body = {**common, "preset": preset, "objective": objective}
            print(row(preset, wait(stack, client, client.post("/v1/jobs", json=body).json()["id"])))
        for label, quantize in (
            ("ort quantize_dynamic()", lambda out: quantize_dynamic(source, out)),
            (
                "ort quantize_static()",
                lambda out: quantize_static(source, out, Reader(calibration)),
            ),
        ):
            output = workdir / f"{name}-{label[4:18]}.onnx"
            quantize(output)
            body = {"model_id": upload(client, output), "baseline_model_id": model_id,
                    "eval_dataset_id": data["eval_dataset_id"], "runs": args.runs}  # fmt: skip
            job = wait(stack, client, client.post("/v1/benchmarks", json=body).json()["id"])
            # A benchmark job carries no objective: judge its delta against this run's budget.
            delta = ((job.get("metrics") or {}).get("accuracy") or {}).get("delta")
            if isinstance(delta, int | float):
                job["verdict"] = "verified" if delta >= -args.max_drop else "rejected"
            print(row(label, job))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--max-drop", type=float, default=0.1)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # onnxruntime's quantizers are chatty
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp))
        try:
            for name in args.models.split(","):
                bench_model(stack, name.strip(), Path(tmp), args)
                stack.kill("second-worker")
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
