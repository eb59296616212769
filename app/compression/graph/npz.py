"""Calibration and evaluation data: `.npz` files checked against a model's inputs."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from app.compression.graph.analysis import TensorSpec
from app.compression.graph.inputs import resolve_input_shapes, synthetic_inputs

LABELS = "labels"


class DatasetError(ValueError):
    """The file is not a dataset we accept (not an npz, object arrays, ragged sample counts)."""


class DatasetMismatchError(ValueError):
    """The dataset does not fit the model: missing inputs, wrong shapes or dtypes."""


class ArraySpec(BaseModel):
    shape: list[int]
    dtype: str


class DatasetInfo(BaseModel):
    num_samples: int = Field(description="Length of axis 0, the same in every array.")
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
    """Check an .npz without unpickling anything; every array shares its first axis."""
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
    counts = {name: spec.shape[0] if spec.shape else 0 for name, spec in arrays.items()}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise DatasetError(f"every array needs the same, non-zero number of samples: {counts}")
    return DatasetInfo(
        num_samples=next(iter(counts.values())), arrays=arrays, has_labels=LABELS in arrays
    )


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


def check_fits_model(info: DatasetInfo, inputs: list[TensorSpec]) -> None:
    """Raise DatasetMismatchError unless every model input has a matching array."""
    problems = []
    for spec in inputs:
        array = info.arrays.get(spec.name)
        if array is None:
            problems.append(f"no array named {spec.name!r}")
            continue
        if array.dtype != spec.dtype:
            problems.append(f"{spec.name!r} is {array.dtype}, the model wants {spec.dtype}")
        # Axis 0 is the sample axis and feeds the model's batch axis one sample at a time.
        want = f"the model wants {spec.shape} with axis 0 as the sample axis"
        if spec.rank_known and len(array.shape) != len(spec.shape):
            problems.append(f"{spec.name!r} has shape {array.shape}; {want}")
            continue
        fixed = [(w, g) for w, g in zip(spec.shape[1:], array.shape[1:], strict=False)]
        batch_ok = not spec.shape or not isinstance(spec.shape[0], int) or spec.shape[0] == 1
        if not batch_ok or any(isinstance(w, int) and w != g for w, g in fixed):
            problems.append(f"{spec.name!r} has shape {array.shape}; {want}")
    if problems:
        raise DatasetMismatchError("; ".join(problems))


def load_samples(
    path: Path, inputs: list[TensorSpec], limit: int | None = None
) -> list[dict[str, np.ndarray]]:
    """One feed per sample (batch of 1), at most `limit` of them."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {spec.name: npz[spec.name] for spec in inputs}
    count = min(len(a) for a in arrays.values())
    if limit is not None:
        count = min(count, limit)
    return [{name: a[i : i + 1] for name, a in arrays.items()} for i in range(count)]


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
) -> tuple[list[dict[str, np.ndarray]], bool]:
    """(feeds, synthetic): the dataset's samples, else synthetic ones from the input spec."""
    if dataset_path is not None:
        return load_samples(dataset_path, inputs, num_samples), False
    shapes = resolve_input_shapes(inputs, input_shapes, default_dim)
    return synthetic_inputs(inputs, shapes, samples=num_samples, seed=seed), True
