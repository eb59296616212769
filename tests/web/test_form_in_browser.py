"""A person's path through the upload form, in a real headless Chromium against the live stack."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from tests.stack import LiveStack
from tests.web.conftest import Files, sign_in


def test_upload_with_shapes_and_datasets_then_reload_and_history(
    page: Any, live_stack: LiveStack, client: httpx.Client, files: Files, tmp_path: Path
) -> None:
    sign_in(page, f"{live_stack.url}/", live_stack.api_key)
    # Every text the upload line shows, and a network slow enough that the upload takes a while.
    page.evaluate(
        """() => {
          const line = document.querySelector('#upload-text');
          window.uploadTexts = [];
          new MutationObserver(() => uploadTexts.push(line.textContent))
            .observe(line, {childList: true, characterData: true, subtree: true});
        }"""
    )
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 1_000_000},
    )
    page.fill("#name", "<b>form mlp</b>")
    page.set_input_files("#file", str(files.model))
    # Uploaded on choice: the bar ends full and the shapes come from the model's symbolic dims.
    page.wait_for_selector("#shapes:not([hidden])")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    texts = page.evaluate("window.uploadTexts")
    percents = {int(m) for t in texts for m in re.findall(r"uploading (\d+)%", t)}
    assert any(0 < p < 100 for p in percents), texts
    assert "uploaded" in (page.text_content("#upload-text") or "")
    assert page.eval_on_selector("#upload-progress", "p => p.value") == 1
    assert page.input_value("#shape-0") == "1, 256"
    assert "symbolic dims: batch" in (page.text_content("label[for=shape-0]") or "")

    # Bad values are shown next to their fields, and nothing is submitted.
    page.fill("#shape-0", "4, 255")
    page.fill("#runs", "0")
    page.click("#submit")
    assert "Fixed dims" in (page.text_content("#shape-0-error") or "")
    assert "1 to 10000" in (page.text_content("[id='benchmark.runs-error']") or "")
    assert client.get("/v1/jobs").json()["items"] == [] or page.url.endswith("/")

    page.fill("#shape-0", "4, 256")
    page.fill("#runs", "5")
    page.select_option("#preset", "int8-static")
    page.set_input_files("#calibration", str(files.calibration))
    page.set_input_files("#evaluation", str(files.evaluation))
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f-]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("#job[data-loaded]", timeout=120_000)
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert page.text_content("#status") == job["status"] == "succeeded"
    assert job["input_shapes"] == {"input": [4, 256]} and job["benchmark"]["runs"] == 5
    assert job["calibration_dataset_id"] and job["eval_dataset_id"]
    assert "[4, 256]" in (page.text_content("#shapes-table") or "")
    assert page.is_hidden("#progress-wrap")

    # A reload, then the history on the front page, lead back to the same results.
    page.reload()
    page.wait_for_selector("#job[data-loaded]")
    assert page.is_visible("#chart-accuracy")
    page.goto(f"{live_stack.url}/")
    page.click(f"#job-list a[href='/jobs/{job_id}']")
    page.wait_for_selector("#job[data-loaded]")
    assert page.text_content("#status") == "succeeded"

    model = client.get(f"/v1/models/{job['output_model_id']}").json()
    with page.expect_download() as info:
        page.click("#download")
    info.value.save_as(tmp_path / "plain.onnx")
    assert (tmp_path / "plain.onnx").stat().st_size == model["size_bytes"]
    with page.expect_download() as info:
        page.click("#download-zstd")
    info.value.save_as(tmp_path / "small.onnx.zst")
    assert (tmp_path / "small.onnx.zst").stat().st_size == model["transport_size_bytes"]
    assert files.model.stat().st_size / model["size_bytes"] > 3


def test_a_bad_file_shows_the_problem_and_its_remedy(
    page: Any, live_stack: LiveStack, tmp_path: Path
) -> None:
    bogus = tmp_path / "notes.onnx"
    bogus.write_text("not a model")
    sign_in(page, f"{live_stack.url}/", live_stack.api_key)
    page.set_input_files("#file", str(bogus))
    page.wait_for_selector("#file-error:not([hidden])", timeout=30_000)

    text = page.text_content("#file-error") or ""
    assert "invalid_model" in text and "What to do" in text
    assert page.is_hidden("#shapes")
