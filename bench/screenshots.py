"""The web pages' screenshots in docs/screenshots/, taken in headless Chromium on a real stack.

    .venv/bin/python bench/screenshots.py [--out docs/screenshots] [--runs 30]

Starts the production shape on loopback (uvicorn and a Celery worker on the local Postgres, a
database of its own, and Redis database 12; files in a temporary folder), uploads a test MLP with
calibration and labelled evaluation data, compresses it with three presets, runs one job that
fails on purpose and an auto search (on a second copy), then photographs each page on a desktop
(1200 px) and on a phone (360 px).
Needs Chromium (`make browser`) and Playwright (a dev dependency).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import onnxruntime as ort  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from tests.builders import build_mlp  # noqa: E402
from tests.stack import LiveStack, standalone_stack  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
BROKER = "redis://127.0.0.1:6379/12"
PRESETS = ("int8-dynamic", "int8-static", "fp16")
DESKTOP = {"width": 1200, "height": 900}
PHONE = {"width": 360, "height": 760}


def data_files(model: Path, folder: Path) -> tuple[Path, Path]:
    """(calibration, evaluation): seeded inputs; evaluation labelled with the model's answers."""
    inputs = np.random.default_rng(1).standard_normal((200, 256)).astype(np.float32)
    labels = ort.InferenceSession(str(model)).run(None, {"input": inputs})[0].argmax(axis=1)
    np.savez(folder / "calibration.npz", input=inputs[:32])
    np.savez(folder / "evaluation.npz", input=inputs, labels=labels.astype(np.int64))
    return folder / "calibration.npz", folder / "evaluation.npz"


def upload(client: httpx.Client, url: str, path: Path, name: str) -> str:
    with path.open("rb") as fh:
        answer = client.post(url, files={"file": (path.name, fh)}, data={"name": name})
    return str(answer.raise_for_status().json()["id"])


def make_jobs(stack: LiveStack, folder: Path, runs: int) -> dict[str, str]:
    """Every preset of one model with real data, and a failing job: their ids by page name."""
    model = build_mlp(folder / "mlp.onnx")
    calibration, evaluation = data_files(model, folder)
    with stack.client() as client:
        model_id = upload(client, "/v1/models", model, "mlp-256-1024-1024-256")
        data = {
            "calibration_dataset_id": upload(client, "/v1/datasets", calibration, "calibration"),
            "eval_dataset_id": upload(client, "/v1/datasets", evaluation, "evaluation"),
        }
        jobs = {}
        for preset in PRESETS:
            body = {"model_id": model_id, "preset": preset, "benchmark": {"runs": runs}, **data}
            jobs[preset] = client.post("/v1/jobs", json=body).raise_for_status().json()["id"]
        failing = {"model_id": model_id, "recipe": {"passes": [{"type": "test_raise"}]}}
        failed = client.post("/v1/jobs", json=failing).raise_for_status().json()["id"]
        # The same model again under its own name, searched by auto: its candidates' page.
        auto_model = upload(client, "/v1/models", model, "mlp-auto-search")
        search = {"model_id": auto_model, "preset": "auto", "benchmark": {"runs": runs}, **data}
        auto = client.post("/v1/jobs", json=search).raise_for_status().json()["id"]
        for job_id in [*jobs.values(), failed, auto]:
            job = stack.wait_for_job(client, job_id, timeout_s=900)
            logging.info("job %s %s", job_id, job["status"])
    return {
        "model": model_id, "job": jobs["int8-static"], "failed": failed,
        "auto_model": auto_model, "auto": auto,
    }  # fmt: skip


def shoot(stack: LiveStack, ids: dict[str, str], out: Path) -> list[Path]:
    pages = {
        "index": ("/", "#job-list li"),
        "job": (f"/jobs/{ids['job']}", "#job[data-loaded]"),
        "model": (f"/models/{ids['model']}", "#variants[data-loaded]"),
        "failed-job": (f"/jobs/{ids['failed']}", "#job[data-loaded]"),
        "auto-job": (f"/jobs/{ids['auto']}", "#job[data-loaded]"),
        "auto-model": (f"/models/{ids['auto_model']}", "#variants[data-loaded]"),
    }
    # The key the pages would ask for once, put in session storage before any script runs.
    key_script = f"sessionStorage.setItem('modelpress-api-key', {stack.api_key!r});"
    shots = []
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for device, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            context = browser.new_context(viewport=viewport, device_scale_factor=1)
            context.add_init_script(key_script)
            page: Any = context.new_page()
            for name, (path, ready) in pages.items():
                page.goto(stack.url + path)
                page.wait_for_selector(ready, timeout=60_000)
                shot = out / f"{name}-{device}.png"
                page.screenshot(path=str(shot), full_page=True)
                shots.append(shot)
            context.close()
        browser.close()
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--runs", type=int, default=30, help="benchmark runs per job")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {"MODELPRESS_EXTRA_PASS_MODULES": "tests.fault_passes"}
        stack = standalone_stack(folder, "screenshots", pg_url=PG, broker_url=BROKER, env=env)
        try:
            ids = make_jobs(stack, folder, args.runs)
            for shot in shoot(stack, ids, args.out):
                print(shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot)
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
