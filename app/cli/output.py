"""Text rendering for the CLI: the progress line and the metrics summary."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

BAR_WIDTH = 30


def to_dict(answer: BaseModel) -> dict[str, Any]:
    """An SDK object as the JSON the server sent (fields it left out stay out)."""
    return answer.model_dump(mode="json", exclude_unset=True)


def progress_line(job: dict[str, Any]) -> str:
    """One-line bar such as `[#######-------]  42% running quantize_dynamic`."""
    try:
        frac = min(1.0, max(0.0, float(job.get("progress") or 0.0)))
    except (TypeError, ValueError):
        frac = 0.0
    filled = round(frac * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    stage = job.get("stage") or ""
    return f"[{bar}] {frac * 100:3.0f}% {job.get('status', '?')} {stage}".rstrip()


def _num(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, int | float) else "-"


def _size(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return "-"  # unreachable; keeps mypy sure of the return


def _latency(side: dict[str, Any], key: str) -> Any:
    lat = side.get("latency_ms")
    return lat.get(key) if isinstance(lat, dict) else None


def summary(job: dict[str, Any]) -> str:
    """Human summary of a job: status line, then metrics or the error."""
    lines = [f"job {job.get('id')}: {job.get('status')}"]
    error = job.get("error")
    if isinstance(error, dict):
        lines.append(f"error [{error.get('code')}]: {error.get('message')}")
    if job.get("output_model_id"):
        lines.append(f"output model: {job['output_model_id']}")
    lines.extend(candidates_table(job))
    if job.get("explanation"):
        lines.append(str(job["explanation"]))
    metrics = job.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        return "\n".join(lines)

    orig = metrics.get("original") or {}
    comp = metrics.get("compressed") or {}
    rows = [
        ("size", _size(orig.get("size_bytes")), _size(comp.get("size_bytes"))),
        ("params", _num(orig.get("param_count"), ","), _num(comp.get("param_count"), ",")),
        ("p50 ms", _num(_latency(orig, "p50"), ".3f"), _num(_latency(comp, "p50"), ".3f")),
        ("p90 ms", _num(_latency(orig, "p90"), ".3f"), _num(_latency(comp, "p90"), ".3f")),
        ("load ms", _num(orig.get("load_ms"), ".1f"), _num(comp.get("load_ms"), ".1f")),
    ]
    lines.append(f"{'':10}{'original':>16}{'compressed':>16}")
    lines.extend(f"{label:10}{a:>16}{b:>16}" for label, a, b in rows)
    fidelity = metrics.get("fidelity") or {}
    lines.append(f"compression ratio: {_num(metrics.get('compression_ratio'), '.2f')}x")
    lines.append(f"speedup ratio:     {_num(metrics.get('speedup_ratio'), '.2f')}x")
    lines.append(f"cosine similarity: {_num(fidelity.get('cosine_similarity'), '.6f')}")
    lines.append(f"max abs error:     {_num(fidelity.get('max_abs_error'), '.3g')}")
    lines.extend(f"warning: {text}" for text in _warnings(job, metrics))
    return "\n".join(lines)


def candidates_table(job: dict[str, Any]) -> list[str]:
    """An auto job's candidates, one row each, the recommendation marked."""
    rows = [c for c in job.get("candidates") or [] if isinstance(c, dict)]
    if not rows:
        return []
    head = f"  {'candidate':40}{'size':>8}{'speedup':>14}{'delta':>9}  {'verdict':11}pareto"
    lines = [head]
    for c in rows:
        speed = _num(c.get("speedup_ratio"), ".2f")
        if isinstance(c.get("speedup_noise"), int | float) and speed != "-":
            speed = f"{speed}±{c['speedup_noise']:.2f}"
        verdict = c.get("verdict") or c.get("status") or "-"
        lines.append(
            f"{'*' if c.get('recommended') else ' '} {str(c.get('label'))[:39]:40}"
            f"{_num(c.get('compression_ratio'), '.2f'):>7}x{speed:>13}x"
            f"{_num(c.get('delta'), '+.4f'):>9}  {verdict:11}{'yes' if c.get('pareto') else ''}"
        )
    return lines


def outcome_lines(job: dict[str, Any]) -> tuple[list[str], bool]:
    """What a finished job's verdict means for its user, and whether it is a usable result."""
    if job.get("kind") == "auto":
        if job.get("output_model_id"):
            return [], True
        reason = job.get("recommendation_reason") or "no recommendation"
        lines = [f"no recommendation: {reason}"]
        if reason == "no_real_data":
            lines.append("real evaluation data is needed for a verdict: give --eval data.npz")
        return lines, False
    verdict = job.get("verdict")
    if verdict == "rejected":
        detail = job.get("verdict_detail") or {}
        return [f"verdict: rejected: {detail.get('reason') or 'over the accuracy budget'}"], False
    if verdict == "unverified":
        return ["verdict: unverified: real evaluation data is needed (give --eval data.npz)"], True
    return ([f"verdict: {verdict}"] if verdict else []), True


def _warnings(job: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    # The job's warnings already include the metrics' ones: each is said once, in order.
    found = [*(job.get("warnings") or []), *(metrics.get("warnings") or [])]
    texts = [str(w.get("message", w)) if isinstance(w, dict) else str(w) for w in found]
    return list(dict.fromkeys(texts))


def jobs_table(jobs: list[dict[str, Any]]) -> list[str]:
    """One line per job: id, status, kind, creation time, model -> output model."""
    lines = [f"{'job':37}{'status':11}{'kind':11}{'created (UTC)':21}model -> output"]
    for job in jobs:
        created = str(job.get("created_at") or "")[:19].replace("T", " ")
        lines.append(
            f"{job.get('id')!s:37}{job.get('status')!s:11}{job.get('kind')!s:11}{created:21}"
            f"{job.get('model_id') or '-'} -> {job.get('output_model_id') or '-'}"
        )
    return lines


def models_table(models: list[dict[str, Any]]) -> list[str]:
    """One line per model: id, size, creation time, name and the job that made it."""
    lines = [f"{'model':37}{'size':>12}  {'created (UTC)':21}name"]
    for model in models:
        created = str(model.get("created_at") or "")[:19].replace("T", " ")
        made_by = f"  (job {model['job_id']})" if model.get("job_id") else ""
        lines.append(
            f"{model.get('id')!s:37}{_size(model.get('size_bytes')):>12}  {created:21}"
            f"{model.get('name')}{made_by}"
        )
    return lines
