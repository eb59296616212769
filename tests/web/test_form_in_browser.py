"""A person's path through the web form, in a real headless Chromium against the live stack."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builders import build_mlp
from tests.stack import LiveStack

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (make test installs Debian's chromium)"
)


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"],
        )  # fmt: skip
        context = browser.new_context(accept_downloads=True)
        yield context.new_page()
        browser.close()


def test_upload_compress_and_download_from_the_form(
    page: Any, live_stack: LiveStack, tmp_path: Path
) -> None:
    model = build_mlp(tmp_path / "browser-mlp.onnx")
    page.goto(f"{live_stack.url}/")
    page.fill("#api-key", live_stack.api_key)

    page.set_input_files("#file", str(model))
    page.fill("#name", "<b>my mlp</b>")
    page.select_option("#preset", "int8-dynamic")
    page.click("#submit")
    page.wait_for_function(
        "['succeeded','failed','canceled'].includes(document.querySelector('#status').textContent)",
        timeout=120_000,
    )

    assert page.text_content("#status") == "succeeded"
    metrics = page.text_content("#metrics") or ""
    assert "Compression ratio" in metrics or "compression ratio" in metrics.lower()
    page.screenshot(path=str(tmp_path / "form.png"), full_page=True)
    with page.expect_download() as info:
        page.click("#download")
    downloaded = tmp_path / "downloaded.onnx"
    info.value.save_as(downloaded)
    assert model.stat().st_size / downloaded.stat().st_size > 3


def test_a_bad_file_shows_the_problem(page: Any, live_stack: LiveStack, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.onnx"
    bogus.write_text("not a model")
    page.goto(f"{live_stack.url}/")
    page.fill("#api-key", live_stack.api_key)

    page.set_input_files("#file", str(bogus))
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)

    assert "invalid_model" in (page.text_content("#error") or "")
