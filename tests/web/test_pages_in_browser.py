"""The job and model pages in a real headless Chromium: charts, failures, variants, tenants."""

from __future__ import annotations

from typing import Any

import httpx

from tests.stack import LiveStack
from tests.web.conftest import Variants, sign_in


def _ms(value: float) -> str:
    """As the page writes milliseconds (dom.js fmtMs)."""
    return (
        f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"
    )


def test_job_page_charts_carry_the_metrics_numbers(
    page: Any, live_stack: LiveStack, variants: Variants
) -> None:
    job = variants.jobs["int8-dynamic"]
    sign_in(page, f"{live_stack.url}/jobs/{job['id']}", live_stack.api_key)
    page.wait_for_selector("#job[data-loaded='succeeded']")
    m = job["metrics"]

    for chart in ("size", "latency", "throughput", "memory", "fidelity"):
        assert page.is_visible(f"#chart-{chart} svg"), chart
    latency = page.locator("#chart-latency text.value").all_text_contents()
    expected = [
        _ms(m[side]["latency_ms"][p])
        for p in ("p50", "p90", "p99")
        for side in ("original", "compressed")
    ]
    assert latency == expected
    cosine = f"{m['fidelity']['cosine_similarity']:.4f}"
    assert cosine in page.locator("#chart-fidelity text.value").all_text_contents()
    assert page.locator("#chart-size text.value").count() == 2
    assert page.is_visible("#metrics-table") and page.is_visible("#worst-tensors")
    assert "[1, 256]" in (page.text_content("#shapes-table") or "")
    assert "default size" in (page.text_content("#shapes") or "")
    assert "int8-dynamic" in (page.text_content("#recipe") or "")


def test_a_failed_job_shows_its_failure_not_a_bar(
    page: Any, live_stack: LiveStack, variants: Variants
) -> None:
    sign_in(page, f"{live_stack.url}/jobs/{variants.failed['id']}", live_stack.api_key)
    page.wait_for_selector("#job[data-loaded='failed']")

    failure = page.text_content("#failure") or ""
    assert variants.failed["error"]["code"] in failure and "What to do" in failure
    assert page.is_hidden("#progress-wrap") and page.is_hidden("#charts")


def test_model_page_compares_the_presets(
    page: Any, live_stack: LiveStack, variants: Variants
) -> None:
    sign_in(page, f"{live_stack.url}/models/{variants.model_id}", live_stack.api_key)
    page.wait_for_selector("#variants[data-loaded]")

    rows = page.locator("#variants-grid tbody tr")
    assert rows.count() == 3  # two presets and the failed recipe
    dots = page.locator("#chart-variants circle.dot")
    assert dots.count() == 3  # the original and the two that succeeded
    labels = " ".join(page.locator("#chart-variants text.point-label").all_text_contents())
    for preset, job in variants.jobs.items():
        assert f"{preset} · cos {job['metrics']['fidelity']['cosine_similarity']:.4f}" in labels
    assert "original" in labels


def test_pages_fit_a_360_px_phone(browser: Any, live_stack: LiveStack, variants: Variants) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    page = context.new_page()
    job_id = variants.jobs["fp16"]["id"]
    sign_in(page, f"{live_stack.url}/jobs/{job_id}", live_stack.api_key)
    pages = {
        f"/jobs/{job_id}": "#job[data-loaded]",
        f"/models/{variants.model_id}": "#variants[data-loaded]",
        "/": "#job-list li",
    }
    for path, ready in pages.items():
        page.goto(f"{live_stack.url}{path}")
        page.wait_for_selector(ready)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, (path, width)
    page.goto(f"{live_stack.url}/")
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input, select')].filter(
             c => !c.labels?.length && !c.getAttribute('aria-label')).map(c => c.id)"""
    )
    assert unlabelled == []
    context.close()


def test_another_tenants_key_sees_nothing(
    page: Any, live_stack: LiveStack, client: httpx.Client, variants: Variants
) -> None:
    other = live_stack.admin("create-key", live_stack.admin("create-tenant", "web-other")["id"])
    job = variants.jobs["int8-dynamic"]
    sign_in(page, f"{live_stack.url}/jobs/{job['id']}", other["key"])
    page.wait_for_selector("#error:not([hidden])")

    assert page.text_content("#status") == "not found"
    assert page.is_hidden("#metrics") and page.is_hidden("#downloads")
    page.goto(f"{live_stack.url}/")
    page.wait_for_selector("#job-list li")
    assert job["id"] not in page.content()
    assert page.locator("#model-list a").count() == 0


def test_pages_are_served_without_a_key_and_carry_no_data(
    live_stack: LiveStack, variants: Variants
) -> None:
    for path in ("/", f"/jobs/{variants.failed['id']}", f"/models/{variants.model_id}"):
        answer = httpx.get(f"{live_stack.url}{path}")
        assert answer.status_code == 200 and 'data-auth="on"' in answer.text
        assert "variants-mlp" not in answer.text
    assert httpx.get(f"{live_stack.url}/jobs/<script>").status_code in {404, 422}


def test_a_running_job_shows_its_bar_and_can_be_canceled(
    page: Any, live_stack: LiveStack, client: httpx.Client, variants: Variants
) -> None:
    body = {
        "model_id": variants.model_id,
        "recipe": {"passes": [{"type": "test_sleep", "seconds": 60}]},
    }
    job_id = client.post("/v1/jobs", json=body).raise_for_status().json()["id"]
    sign_in(page, f"{live_stack.url}/jobs/{job_id}", live_stack.api_key)
    page.wait_for_selector("#progress-wrap:not([hidden])")
    page.wait_for_function("document.querySelector('#status').textContent === 'running'")

    page.click("#cancel")
    page.wait_for_selector("#job[data-loaded='canceled']", timeout=30_000)
    assert page.is_hidden("#progress-wrap") and page.is_hidden("#cancel")
    assert "canceled" in (page.text_content("#failure") or "")


def test_the_history_pages_newest_first(
    page: Any, live_stack: LiveStack, client: httpx.Client, variants: Variants
) -> None:
    # The history leaves out an auto search's candidates.
    history = {"limit": 4, "kind": ["compress", "benchmark", "auto"]}
    newest = [job["id"] for job in client.get("/v1/jobs", params=history).json()["items"]]
    sign_in(page, f"{live_stack.url}/?limit=2", live_stack.api_key)
    page.wait_for_selector("#job-list li a")
    first = page.locator("#job-list a").evaluate_all("links => links.map(a => a.pathname)")
    assert first == [f"/jobs/{job_id}" for job_id in newest[:2]]

    page.click("#jobs-older")
    page.wait_for_function(f"!document.querySelector('#job-list a[href=\"/jobs/{newest[0]}\"]')")
    second = page.locator("#job-list a").evaluate_all("links => links.map(a => a.pathname)")
    assert second == [f"/jobs/{job_id}" for job_id in newest[2:4]]
    assert page.is_visible("#jobs-newer")
    page.click("#jobs-newer")
    page.wait_for_selector(f"#job-list a[href='/jobs/{newest[0]}']")
    models = [m["id"] for m in client.get("/v1/models", params={"limit": 2}).json()["items"]]
    shown = page.locator("#model-list a").evaluate_all("links => links.map(a => a.pathname)")
    assert shown == [f"/models/{model_id}" for model_id in models]


def test_compress_again_reuses_the_uploaded_model(
    page: Any, live_stack: LiveStack, variants: Variants
) -> None:
    sign_in(page, f"{live_stack.url}/models/{variants.model_id}", live_stack.api_key)
    page.click("#compress-again")
    page.wait_for_selector("#shapes:not([hidden])")

    assert "variants-mlp" in (page.text_content("#upload-text") or "")
    assert page.input_value("#shape-0") == "1, 256"
