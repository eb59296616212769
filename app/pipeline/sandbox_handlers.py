"""What the sandbox child runs: a pass, a benchmark or an upload check, each turned into one
typed result.

Imported by the child only once its memory limit is set: everything here may load onnx and
onnxruntime.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from app.compression.errors import PassError
from app.compression.graph.analysis import (
    InvalidModelError,
    graph_inputs,
    inspect_model,
    load_proto,
)
from app.compression.graph.model_analysis import ModelAnalysis, analyze_model
from app.compression.graph.npz import calibration_samples
from app.compression.measure.benchmark import benchmark_pair, benchmark_single
from app.compression.measure.divergence import check_outputs, collapse_warning
from app.compression.measure.latency import resolve_providers
from app.compression.measure.metrics import NodeSensitivityRow
from app.compression.measure.options import MeasureOptions
from app.compression.measure.quant_error import node_sensitivity
from app.compression.passes import recipes  # noqa: F401  # importing it registers every pass
from app.compression.passes.base import PASS_REGISTRY, PassReport
from app.pipeline.sandbox_protocol import (
    BenchmarkRequest,
    BenchmarkResult,
    PassRequest,
    PassResult,
    SandboxFailure,
    ValidateModelRequest,
    ValidateModelResult,
    sandbox_request,
)


def _run_pass(request: PassRequest) -> PassResult:
    runner = PASS_REGISTRY[request.config.type]()
    report = runner.run(request.input, request.config, request.output, request.context)
    if request.check_samples:
        _check_output(request, report)
    return PassResult(report=report)


def _check_output(request: PassRequest, report: PassReport) -> None:
    """Compare the pass's output with its input on the calibration feeds; warn on a collapse."""
    try:
        feeds, synthetic = request.context.sample_feeds(
            load_proto(request.input), request.check_samples
        )
        check = check_outputs(request.config.type, request.input, request.output, feeds, synthetic)
    except Exception as exc:
        # The check never fails a pass that worked: not for a model ORT cannot run as is,
        # inputs it cannot draw, or even memory running out (MemoryError is an Exception).
        report.details["output_check"] = {"checked": False, "reason": f"{exc}"[:300]}
        return
    if check is None:
        return
    report.details["output_check"] = check.model_dump(mode="json")
    warning = collapse_warning(request.config.type, check)
    if warning is not None:
        report.warnings.append(warning)


def _run_benchmark(request: BenchmarkRequest) -> BenchmarkResult:
    """Metrics of the model (against its baseline), plus the report's per-tensor rows."""
    try:
        resolve_providers(request.options.provider)
    except ValueError as exc:
        raise PassError("provider_unavailable", str(exc)) from exc
    if request.baseline is None:
        return BenchmarkResult(metrics=benchmark_single(request.model, request.options))
    pair = benchmark_pair(request.baseline, request.model, request.options)
    return BenchmarkResult(
        metrics=pair.metrics,
        weights=pair.weights,
        sensitivity=_sensitivity(request.baseline, request.model, request.options),
    )


def _sensitivity(baseline: Path, model: Path, options: MeasureOptions) -> list[NodeSensitivityRow]:
    samples, _ = calibration_samples(
        graph_inputs(load_proto(baseline)),
        options.eval_dataset_path,
        num_samples=8,
        input_shapes=options.input_shapes,
        default_dim=options.default_dim,
        seed=options.seed,
        input_values=options.input_values,
    )
    return node_sensitivity(baseline, model, samples, threads=options.threads)


def _validate_model(request: ValidateModelRequest) -> ValidateModelResult | SandboxFailure:
    """An uploaded model's facts and analysis, or invalid_model saying why it cannot be used."""
    try:
        info = inspect_model(request.model)
    except InvalidModelError as exc:
        return SandboxFailure(code="invalid_model", message=str(exc))
    return ValidateModelResult(info=info, analysis=_analysis(request.model))


def _analysis(path: Path) -> ModelAnalysis | None:
    """The pre-flight analysis of a valid model; None rather than a refused upload if it fails."""
    try:
        return analyze_model(path)
    except Exception:  # an export it does not foresee, or out of memory: still a usable model
        traceback.print_exc()
        return None


def handle(
    request_json: bytes,
) -> PassResult | BenchmarkResult | ValidateModelResult | SandboxFailure:
    """The request's result, or the failure a user should see (MemoryError goes up)."""
    request = sandbox_request.validate_json(request_json)
    try:
        if isinstance(request, PassRequest):
            return _run_pass(request)
        if isinstance(request, ValidateModelRequest):
            return _validate_model(request)
        return _run_benchmark(request)
    except MemoryError:
        raise
    except PassError as exc:
        return SandboxFailure(code=exc.code, message=exc.message)
    except InvalidModelError as exc:
        return SandboxFailure(code="invalid_output", message=str(exc))
    except Exception as exc:
        traceback.print_exc()
        return SandboxFailure(
            code="internal_error",
            message=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
