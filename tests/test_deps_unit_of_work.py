"""A burst of submissions larger than the API's thread pool and connection pool is served, not
stalled: every request gives its connection back in the turn that used it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.builders import build_mlp
from tests.private_stack import private_stack
from tests.stack import LiveStack

BURST = 90  # more requests at once than the 40 threads and the 40 pooled connections


async def _submit_all(url: str, api_key: str, model_id: str) -> tuple[Counter[int], float]:
    headers = {"Authorization": f"Bearer {api_key}"}
    limits = httpx.Limits(max_connections=BURST + 5)
    body = {"model_id": model_id, "recipe": {"passes": [{"type": "optimize_graph"}]}}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:
        start = time.monotonic()
        answers = await asyncio.gather(*(c.post("/v1/jobs", json=body) for _ in range(BURST)))
        return Counter(a.status_code for a in answers), time.monotonic() - start


def test_a_burst_of_submissions_is_all_accepted(live_stack: LiveStack, tmp_path: Path) -> None:
    model = build_mlp(tmp_path / "burst.onnx", sizes=(8, 16, 4))
    with private_stack(
        live_stack, "burst", tmp_path,
        MODELPRESS_MAX_ACTIVE_JOBS_PER_TENANT=str(BURST + 1),
        MODELPRESS_JOB_SUBMISSIONS_PER_MINUTE=str(BURST + 1),
    ) as stack, stack.client() as client:  # fmt: skip
        uploaded = client.post("/v1/models", files={"file": ("burst.onnx", model.read_bytes())})
        assert uploaded.status_code == 201, uploaded.text

        answers, took_s = asyncio.run(_submit_all(stack.url, stack.api_key, uploaded.json()["id"]))

        assert answers == Counter({202: BURST}), answers
        # Stalled requests would each have waited out the pool's 10 s timeout first.
        assert took_s < 30, f"the burst took {took_s:.1f} s"
        listed = client.get("/v1/jobs", params={"limit": 100}).json()["items"]
        assert len(listed) == BURST
