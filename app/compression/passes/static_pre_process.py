"""ORT's quant_pre_process for the static pass, retried in lighter modes when it fails.

Symbolic shape inference fails on many CNN exports (upsampled feature maps added to the level
above: "Incomplete symbolic shape inference"); without any pre-processing, BatchNormalization
stays apart from its Conv and quantizes badly. So: full, then without symbolic shape inference,
then ONNX shape inference only; the report says which one ran.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import TensorProto

from app.compression.graph.analysis import load_proto

# (mode reported, quant_pre_process switches), lightest last.
ATTEMPTS: tuple[tuple[str, dict[str, bool]], ...] = (
    ("full", {}),
    ("skip_symbolic_shape", {"skip_symbolic_shape": True}),
    ("onnx_shape_only", {"skip_symbolic_shape": True, "skip_optimization": True}),
)
_ORT_LOGGER = "onnxruntime.quantization.shape_inference"


@dataclass
class PreProcessing:
    """Which model to quantize and what pre-processing it went through."""

    source: Path
    mode: str | None = None  # None: every attempt failed
    failures: list[str] = field(default_factory=list)
    typed_outputs: int = 0

    def warnings(self) -> list[str]:
        if self.mode is None:
            return [
                "quant_pre_process failed in every mode, so the model was quantized without "
                f"shape inference or Conv+BatchNorm fusion: expect lower accuracy ({self._why()})"
            ]
        if self.failures:
            return [f"quant_pre_process ran in mode {self.mode} after: {self._why()}"]
        return []

    def _why(self) -> str:
        return "; ".join(self.failures)

    def details(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "failures": self.failures,
            "tensors_typed_by_onnxruntime": self.typed_outputs,
        }


class _Errors(logging.Handler):
    """Collects the errors ORT only logs (its optimizer failing inside quant_pre_process)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().splitlines()[0])


def _describe(exc: Exception) -> str:
    """The exception in one line; a bare assert is named by the function that raised it."""
    if str(exc):
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{type(exc).__name__} in {frames[-1].name}" if frames else type(exc).__name__


def _attempt(staged: Path, target: Path, big: bool, switches: dict[str, bool]) -> list[str]:
    """Run one mode into target (raises if it fails); the errors ORT logged but survived."""
    # onnxruntime loads only when a pass runs, not wherever passes are looked up.
    from onnxruntime.quantization.shape_inference import quant_pre_process

    errors = _Errors()
    logger = logging.getLogger(_ORT_LOGGER)
    logger.addHandler(errors)
    # Failed symbolic shape inference writes sym_shape_infer_temp.onnx into the working
    # directory: keep it in our scratch folder (a pass runs alone in its process).
    try:
        with contextlib.chdir(target.parent):
            quant_pre_process(
                staged,
                target,
                save_as_external_data=big,
                all_tensors_to_one_file=True,
                external_data_location=f"{target.name}.data",
                **switches,
            )
    finally:
        logger.removeHandler(errors)
    return errors.messages


def pre_process(staged: Path, scratch: Path, big: bool) -> PreProcessing:
    """The best pre-processed copy of staged that ORT manages to write, into scratch."""
    staged, scratch = staged.resolve(), scratch.resolve()
    result = PreProcessing(source=staged)
    for index, (mode, switches) in enumerate(ATTEMPTS):
        target = scratch / f"pre{index}.onnx"
        try:
            logged = _attempt(staged, target, big, switches)
        except Exception as exc:  # symbolic shape inference raises many types on exotic graphs
            result.failures.append(f"{mode} failed ({_describe(exc)})")
            continue
        if logged and not switches.get("skip_optimization"):
            result.failures.append(f"{mode}: onnxruntime's optimizer failed ({logged[0]})")
        result.source, result.mode = target, mode
        break
    result.typed_outputs = declare_missing_types(result.source, scratch)
    return result


def _untyped_outputs(model: onnx.ModelProto) -> list[str]:
    graph = model.graph
    typed = {
        v.name
        for v in [*graph.input, *graph.value_info, *graph.output]
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type
    }
    typed |= {t.name for t in graph.initializer}
    return [o for n in graph.node for o in n.output if o and o not in typed]


def declare_missing_types(path: Path, scratch: Path) -> int:
    """Write down the element type of main-graph tensors that ONNX shape inference left
    untyped (outputs of onnxruntime's own ops, and everything downstream of them)."""
    # Calibration only observes typed tensors, and quantizing a node that reads an untyped one
    # fails ("Unable to get valid quantization scale"). onnxruntime knows its own ops: it types
    # every tensor when it loads a copy of the model that lists them all as outputs.
    # onnxruntime loads only when a pass runs, not wherever passes are looked up.
    import onnxruntime as ort

    model = load_proto(path)
    untyped = _untyped_outputs(model)
    if not untyped:
        return 0
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.ValueInfoProto(name=name) for name in untyped)
    probe_path = scratch / f"types-{path.name}"
    onnx.save_model(probe, str(probe_path))  # beside path: its external data resolves too
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(probe_path), options, providers=["CPUExecutionProvider"])
    except Exception:  # the quantizer will say what is wrong with the model
        return 0
    finally:
        probe_path.unlink(missing_ok=True)
    found = {o.name: o.type for o in session.get_outputs()}
    added = 0
    for name in untyped:
        kind = found.get(name, "")  # such as "tensor(float)"
        elem = (
            getattr(TensorProto, kind[7:-1].upper(), None) if kind.startswith("tensor(") else None
        )
        if isinstance(elem, int):
            model.graph.value_info.append(onnx.helper.make_tensor_value_info(name, elem, None))
            added += 1
    if added:
        # Only the protobuf is written: external data, if any, is referenced as it was.
        onnx.save_model(model, str(path))
    return added
