"""Calibration and evaluation data: `.npz` files checked against a model's inputs.

An array named `<input>` holds one value per sample along axis 0; an array named
`const:<input>` is one value fed with every sample (a sample rate, an initial RNN state).
numpy's savez takes any string as a key:
`np.savez(path, input=rows, **{"const:sr": np.array(16000)})`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from app.compression.graph.analysis import TensorSpec
from app.compression.graph.inputs import (
    Constants,
    check_constant_shape,
    constant_inputs,
    resolve_input_shapes,
    synthetic_inputs,
)

LABELS = "labels"
CONSTANT_PREFIX = "const:"
_CONSTANT_HINT = (
    "to use one value for every sample, save it as '" + CONSTANT_PREFIX + "{name}' "
    "(np.savez(path, **{{'" + CONSTANT_PREFIX + "{name}': value}})) or give it in the job's "
    "input_values"
)


class DatasetError(ValueError):
    """The file is not a dataset we accept (not an npz, object arrays, ragged sample counts)."""


class DatasetMismatchError(ValueError):
    """The dataset does not fit the model: missing inputs, wrong shapes or dtypes."""


def constant_name(input_name: str) -> str:
    """The array name that gives an input one value for every sample."""
    return CONSTANT_PREFIX + input_name


def is_constant(array_name: str) -> bool:
    return array_name.startswith(CONSTANT_PREFIX)


class ArraySpec(BaseModel):
    shape: list[int]
    dtype: str


class DatasetInfo(BaseModel):
    num_samples: int = Field(
        description="Length of axis 0 of the per-sample arrays; 1 when all are constants."
    )
    arrays: dict[str, ArraySpec]
    has_labels: bool


MAX_UNCOMPRESSED_BYTES = 8 * 1024**3


def _check_archive(path: Path, max_uncompressed_bytes: int) -> None:
    # Only a zip is an .npz; anything else numpy would try to read as .npy or a pickle.
    if not zipfile.is_zipfile(path):
        raise DatasetError("not an .npz file (numpy.savez writes one)")
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
    # Arrays sit at the top of the archive; nothing is ever extracted, but a path is suspect.
    strangers = [
        m.filename
        for m in members
        if not m.filename.endswith(".npy") or "/" in m.filename or "\\" in m.filename
    ]
    if strangers:
        raise DatasetError(f"the archive holds files that are not .npy arrays: {strangers[:5]}")
    # Declared sizes, checked before anything is inflated: a zip bomb never gets unpacked.
    if sum(m.file_size for m in members) > max_uncompressed_bytes:
        raise DatasetError(f"the arrays would take more than {max_uncompressed_bytes} bytes")


def inspect_dataset(
    path: Path, max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES
) -> DatasetInfo:
    """Check an .npz without unpickling anything; every per-sample array shares its axis 0."""
    _check_archive(path, max_uncompressed_bytes)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: _spec_of(npz, name) for name in npz.files}
    except DatasetError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise DatasetError(f"not a readable .npz file: {exc}") from exc
    if not arrays:
        raise DatasetError("the .npz holds no arrays")
    per_sample = {name: spec for name, spec in arrays.items() if not is_constant(name)}
    scalars = sorted(name for name, spec in per_sample.items() if not spec.shape)
    if scalars:
        raise DatasetError(
            f"array(s) {scalars} have no sample axis; {_CONSTANT_HINT.format(name=scalars[0])}"
        )
    counts = {name: spec.shape[0] for name, spec in per_sample.items()}
    if len(set(counts.values())) > 1 or 0 in counts.values():
        raise DatasetError(
            "every per-sample array needs the same, non-zero number of samples along axis 0: "
            f"{counts}; an array that is the same for every sample (an RNN state, a sample "
            f"rate) is saved as '{CONSTANT_PREFIX}<input>'"
        )
    # Nothing but constants: one sample, made of them.
    num_samples = next(iter(counts.values()), 1)
    return DatasetInfo(num_samples=num_samples, arrays=arrays, has_labels=LABELS in arrays)


def _spec_of(npz: np.lib.npyio.NpzFile, name: str) -> ArraySpec:
    try:
        array = npz[name]
    except ValueError as exc:  # numpy refuses object arrays when allow_pickle is False
        raise DatasetError(f"array {name!r} holds Python objects, which are never loaded") from exc
    if not isinstance(array, np.ndarray):  # numpy hands back raw bytes for a non-.npy member
        raise DatasetError(f"member {name!r} is not a numpy array")
    if array.dtype.kind not in "biuf":
        raise DatasetError(f"array {name!r} has dtype {array.dtype}; use numbers or booleans")
    return ArraySpec(shape=list(array.shape), dtype=str(array.dtype))


def check_fits_model(
    info: DatasetInfo, inputs: list[TensorSpec], given: Collection[str] = ()
) -> None:
    """Raise DatasetMismatchError unless every model input has a fitting array.

    Inputs named in `given` (the job's input_values) need no array: the JSON value wins.
    """
    problems = []
    for spec in inputs:
        if spec.name in given:
            continue
        per_sample = info.arrays.get(spec.name)
        constant = info.arrays.get(constant_name(spec.name))
        if per_sample is not None and constant is not None:
            problems.append(
                f"both {spec.name!r} and {constant_name(spec.name)!r} are given: keep one"
            )
        elif constant is not None:
            problems += _dtype_problem(spec, constant, constant_name(spec.name))
            try:
                check_constant_shape(spec, constant.shape, repr(constant_name(spec.name)))
            except ValueError as exc:
                problems.append(f"{exc}; {_shape_hint(spec)}")
        elif per_sample is not None:
            problems += _dtype_problem(spec, per_sample, spec.name)
            if not _fits_per_sample(spec, per_sample.shape):
                problems.append(
                    f"{spec.name!r} has shape {per_sample.shape} but the model's input has "
                    f"shape {spec.shape}; {_shape_hint(spec)}"
                )
        else:
            problems.append(f"no array for input {spec.name!r}; {_shape_hint(spec)}")
    if problems:
        raise DatasetMismatchError("; ".join(problems))


def _dtype_problem(spec: TensorSpec, array: ArraySpec, name: str) -> list[str]:
    if array.dtype == spec.dtype:
        return []
    return [f"{name!r} is {array.dtype}, the model wants {spec.dtype} (save .astype(...) of it)"]


def _fits_per_sample(spec: TensorSpec, shape: list[int]) -> bool:
    if not spec.rank_known:
        return True
    if len(shape) == len(spec.shape) + 1:
        # Axis 0 is a sample axis of its own: each sample has the input's whole shape.
        return all(
            not isinstance(w, int) or w == g for w, g in zip(spec.shape, shape[1:], strict=True)
        )
    if len(shape) == len(spec.shape) and spec.shape:
        # Axis 0 runs along the model's batch axis, fed one row at a time.
        fixed = all(
            not isinstance(w, int) or w == g for w, g in zip(spec.shape[1:], shape[1:], strict=True)
        )
        return fixed and (not isinstance(spec.shape[0], int) or spec.shape[0] == 1)
    return False


def _shape_hint(spec: TensorSpec) -> str:
    """How to give this input: per sample, as a constant, or in the job's input_values."""
    dims = ", ".join(str(d) for d in spec.shape)
    per_sample = f"[samples, {dims}]" if dims else "[samples]"
    if spec.shape and (not isinstance(spec.shape[0], int) or spec.shape[0] == 1):
        rest = ", ".join(str(d) for d in spec.shape[1:])
        per_sample += f" or [samples, {rest}] along its batch axis" if rest else ""
    return (
        f"per sample, save {spec.name!r} with shape {per_sample}; "
        + _CONSTANT_HINT.format(name=spec.name)
        + f", with the input's shape [{dims}]"
    )


def load_samples(
    path: Path,
    inputs: list[TensorSpec],
    limit: int | None = None,
    constants: Constants | None = None,
) -> list[dict[str, np.ndarray]]:
    """One feed per sample, at most `limit` of them; constants go into every feed.

    `constants` (the job's input_values) win over the file's arrays.
    """
    fixed = dict(constants or {})
    rows: dict[str, tuple[np.ndarray, bool]] = {}
    with np.load(path, allow_pickle=False) as npz:
        for spec in inputs:
            if spec.name in fixed:
                continue
            if constant_name(spec.name) in npz.files:
                fixed[spec.name] = npz[constant_name(spec.name)]
                continue
            array = npz[spec.name]
            own_axis = spec.rank_known and array.ndim == len(spec.shape) + 1
            rows[spec.name] = (array, own_axis)
    count = min((len(array) for array, _ in rows.values()), default=1)
    if limit is not None:
        count = min(count, limit)
    return [
        {
            **{
                name: array[i] if own_axis else array[i : i + 1]
                for name, (array, own_axis) in rows.items()
            },
            **fixed,
        }
        for i in range(count)
    ]


def load_labels(path: Path) -> np.ndarray | None:
    with np.load(path, allow_pickle=False) as npz:
        return npz[LABELS] if LABELS in npz.files else None


def calibration_samples(
    inputs: list[TensorSpec],
    dataset_path: Path | None,
    *,
    num_samples: int,
    input_shapes: dict[str, list[int]] | None,
    default_dim: int,
    seed: int,
    input_values: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, np.ndarray]], bool]:
    """(feeds, synthetic): the dataset's samples, else synthetic ones from the input spec.

    An input in `input_values` gets that value in every feed, with data or without.
    """
    constants = constant_inputs(inputs, input_values)
    if dataset_path is not None:
        return load_samples(dataset_path, inputs, num_samples, constants), False
    shapes = resolve_input_shapes(inputs, input_shapes, default_dim, constants)
    feeds = synthetic_inputs(inputs, shapes, samples=num_samples, seed=seed, constants=constants)
    return feeds, True
