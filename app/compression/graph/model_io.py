"""Reading and writing model files the way every pass must: external data past the protobuf limit,
and nothing handed back that onnxruntime cannot load."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import ModelProto

from app.compression.errors import PassError
from app.compression.graph.analysis import iter_weight_tensors, load_proto, model_size_bytes

# Above 1.8 GiB a model may not fit in one 2 GiB protobuf: its weights go to a side file.
EXTERNAL_DATA_THRESHOLD = int(1.8 * 1024**3)


def exceeds_protobuf_limit(path: Path, proto: ModelProto | None = None) -> bool:
    """Whether a model this size must be written with external data."""
    return model_size_bytes(path, proto) > EXTERNAL_DATA_THRESHOLD


def writes_external_data(path: Path, proto: ModelProto, keep_external: bool = True) -> bool:
    """Whether a pass writes the model at path back with external data: past the protobuf
    limit, and with keep_external also whenever it has external data now."""
    if keep_external and any(
        onnx.external_data_helper.uses_external_data(t) for t in iter_weight_tensors(proto)
    ):
        return True
    return exceeds_protobuf_limit(path, proto)


def load_model(path: Path, *, keep_external: bool = True) -> tuple[ModelProto, bool]:
    """The model with its weights in memory, and whether to write it back with external data."""
    external = writes_external_data(path, load_proto(path), keep_external)
    return onnx.load(str(path)), external


def save_model(model: ModelProto, path: Path, big: bool, infer_shapes: bool = False) -> None:
    """Write the model (weights to `<name>.data` when big), optionally re-inferring shapes."""
    path.with_name(f"{path.name}.data").unlink(missing_ok=True)
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=big,
        all_tensors_to_one_file=True,
        location=f"{path.name}.data",
    )
    if infer_shapes:
        # The path variant reads the protobuf only, so it also works past 2 GiB.
        onnx.shape_inference.infer_shapes_path(str(path), str(path))


def remove_model(path: Path) -> None:
    """Delete a model file and the side file of its external data, if any."""
    path.unlink(missing_ok=True)
    path.with_name(f"{path.name}.data").unlink(missing_ok=True)


def check_graph(path: Path) -> None:
    """Have onnx's checker read the model file (it raises on an invalid graph)."""
    onnx.checker.check_model(str(path))


def ort_load_error(path: Path) -> str | None:
    """Why onnxruntime's CPU provider cannot load the model at path, or None if it can."""
    # onnxruntime stays out of the API process, which imports this module.
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    # Default optimization level on purpose: some ORT failures only show in its optimizers.
    try:
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # Fail, InvalidGraph, NotImplemented, ...: all mean "cannot load"
        return str(exc)
    return None


def unloadable(what: str, problem: str) -> PassError:
    """The invalid_output error for a `what` model onnxruntime cannot load."""
    return PassError("invalid_output", f"onnxruntime cannot load the {what} model: {problem}")


def require_loadable(path: Path, what: str, hint: str = "") -> None:
    """Raise invalid_output (and delete the file) unless onnxruntime loads the model."""
    problem = ort_load_error(path)
    if problem is not None:
        remove_model(path)
        raise unloadable(what, problem + hint)
