"""Child-process entry: run one pass or one benchmark under limits, answer in a JSON file.

`python -m app.pipeline.sandbox_child REQUEST.json RESULT.json`. The parent (the worker) reads the
exit status: a signal means a crash, exit code 3 means memory ran out.
"""

from __future__ import annotations

import json
import resource
import sys
import traceback
from pathlib import Path
from typing import Any

EXIT_OUT_OF_MEMORY = 3


def _limit_memory(limit_mb: int | None) -> None:
    if limit_mb:
        limit = limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _run_pass(request: dict[str, Any]) -> dict[str, Any]:
    from app.compression.passes.base import PASS_REGISTRY, PassConfig, PassContext
    from app.compression.passes.recipes import Recipe

    config: PassConfig = Recipe.model_validate({"passes": [request["config"]]}).configs()[0]
    context = PassContext.model_validate(request["context"])
    report = PASS_REGISTRY[config.type]().run(
        Path(request["input"]), config, Path(request["output"]), context
    )
    return report.model_dump(mode="json")


def _run_benchmark(request: dict[str, Any]) -> dict[str, Any]:
    """Metrics of the model (against its baseline), plus the report's per-tensor sections."""
    from app.compression.errors import PassError
    from app.compression.measure import benchmark
    from app.compression.measure.latency import resolve_providers

    try:
        resolve_providers(request["options"].get("provider", "cpu"))
    except ValueError as exc:
        raise PassError("provider_unavailable", str(exc)) from exc

    options = dict(request["options"])
    if options.get("eval_dataset_path"):
        options["eval_dataset_path"] = Path(options["eval_dataset_path"])
    model = Path(request["model"])
    if not request.get("baseline"):
        return {"metrics": benchmark.benchmark_single(model, **options), "report": {}}
    baseline = Path(request["baseline"])
    metrics = benchmark.benchmark_pair(baseline, model, **options)
    # Per-tensor and per-node rows go to the report; the metrics keep the headline numbers.
    report = {
        "weights": metrics.get("quantization_error", {}).pop("per_tensor", []),
        "sensitivity": _sensitivity(baseline, model, options),
    }
    return {"metrics": metrics, "report": report}


def _sensitivity(baseline: Path, model: Path, options: dict[str, Any]) -> list[dict[str, Any]]:
    from app.compression.graph.analysis import graph_inputs, load_proto
    from app.compression.graph.npz import calibration_samples
    from app.compression.measure.quant_error import node_sensitivity

    samples, _ = calibration_samples(
        graph_inputs(load_proto(baseline)),
        options.get("eval_dataset_path"),
        num_samples=8,
        input_shapes=options.get("input_shapes"),
        default_dim=options.get("default_dim", 1),
        seed=options.get("seed", 0),
    )
    return node_sensitivity(baseline, model, samples, threads=options.get("threads", 1))


HANDLERS = {"pass": _run_pass, "benchmark": _run_benchmark}


def main(request_path: str, result_path: str) -> int:
    from app.compression.errors import PassError
    from app.compression.graph.analysis import InvalidModelError

    request = json.loads(Path(request_path).read_text())
    _limit_memory(request.get("memory_limit_mb"))
    try:
        result: dict[str, Any] = {"ok": HANDLERS[request["kind"]](request)}
    except MemoryError:
        return EXIT_OUT_OF_MEMORY
    except PassError as exc:
        result = {"error": {"code": exc.code, "message": exc.message}}
    except InvalidModelError as exc:
        result = {"error": {"code": "invalid_output", "message": str(exc)}}
    except Exception as exc:
        traceback.print_exc()
        result = {"error": {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}}
    Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
