"""One headless Chromium and one set of jobs for the browser tests, on the session's live stack."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from playwright.sync_api import sync_playwright

from tests.builders import build_mlp
from tests.stack import LiveStack

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
# A small MLP: each job takes a second or two, and int8 still makes it about 4x smaller.
MLP_SIZES = (256, 512, 256)
QUICK = {"runs": 5, "warmup": 1}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: `make browser` (part of `make test`) installs it")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab (fresh session storage) that fails the test on any script error."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    # An HTTP error the page handles is logged as "Failed to load resource": not a script error.
    tab.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    yield tab
    context.close()
    assert errors == [], errors


def sign_in(page: Any, url: str, key: str) -> None:
    """Open `url` and give the key form the key, as a person would the first time."""
    page.goto(url)
    page.wait_for_selector("#key-form:not([hidden])")
    page.fill("#api-key", key)
    page.click("#key-save")
    page.wait_for_selector("#key-form", state="hidden")


@dataclass
class Files:
    model: Path
    calibration: Path
    evaluation: Path


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """The MLP, calibration inputs, and evaluation inputs labelled with the model's own answers."""
    folder = tmp_path_factory.mktemp("web")
    model = build_mlp(folder / "web-mlp.onnx", sizes=MLP_SIZES)
    inputs = np.random.default_rng(3).standard_normal((64, MLP_SIZES[0])).astype(np.float32)
    labels = ort.InferenceSession(str(model)).run(None, {"input": inputs})[0].argmax(axis=1)
    np.savez(folder / "calibration.npz", input=inputs[:16])
    np.savez(folder / "evaluation.npz", input=inputs, labels=labels.astype(np.int64))
    return Files(model, folder / "calibration.npz", folder / "evaluation.npz")


@pytest.fixture(scope="session")
def client(live_stack: LiveStack) -> Iterator[httpx.Client]:
    with live_stack.client() as http:
        yield http


@dataclass
class Variants:
    model_id: str
    jobs: dict[str, dict[str, Any]]
    failed: dict[str, Any]


@pytest.fixture(scope="session")
def variants(live_stack: LiveStack, client: httpx.Client, files: Files) -> Variants:
    """One uploaded model, compressed with two presets, and a job of it that fails."""
    with files.model.open("rb") as fh:
        upload = client.post("/v1/models", files={"file": fh}, data={"name": "variants-mlp"})
    model_id = upload.raise_for_status().json()["id"]
    started = {
        preset: client.post(
            "/v1/jobs", json={"model_id": model_id, "preset": preset, "benchmark": QUICK}
        )
        for preset in ("int8-dynamic", "fp16")
    }
    failing = client.post(
        "/v1/jobs", json={"model_id": model_id, "recipe": {"passes": [{"type": "test_raise"}]}}
    )
    jobs = {
        p: live_stack.wait_for_job(client, r.raise_for_status().json()["id"])
        for p, r in started.items()
    }
    failed = live_stack.wait_for_job(client, failing.raise_for_status().json()["id"])
    assert all(job["status"] == "succeeded" for job in jobs.values()), jobs
    assert failed["status"] == "failed", failed
    return Variants(model_id, jobs, failed)
