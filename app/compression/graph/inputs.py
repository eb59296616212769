"""Concrete input shapes and synthetic input data for running a model without user data."""

from __future__ import annotations

import numpy as np

from app.compression.graph.analysis import TensorSpec


def resolve_input_shapes(
    inputs: list[TensorSpec], overrides: dict[str, list[int]] | None, default_dim: int
) -> dict[str, list[int]]:
    """A concrete shape per input: overrides win, symbolic/unknown dims become default_dim."""
    if default_dim < 1:
        raise ValueError(f"default_dim must be >= 1, got {default_dim}")
    overrides = dict(overrides or {})
    known = {spec.name for spec in inputs}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"input_shapes names unknown input(s) {unknown}; the model's inputs are {sorted(known)}"
        )
    shapes: dict[str, list[int]] = {}
    for spec in inputs:
        if spec.name in overrides:
            shapes[spec.name] = _checked_override(spec, overrides[spec.name])
        else:
            shapes[spec.name] = [d if isinstance(d, int) else default_dim for d in spec.shape]
    return shapes


def _checked_override(spec: TensorSpec, shape: list[int]) -> list[int]:
    if spec.rank_known and len(shape) != len(spec.shape):
        raise ValueError(
            f"input_shapes[{spec.name!r}] has rank {len(shape)} but the model's input has rank "
            f"{len(spec.shape)} (shape {spec.shape})"
        )
    for axis, dim in enumerate(shape):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(
                f"input_shapes[{spec.name!r}][{axis}] must be a positive integer, got {dim!r}"
            )
        # A fixed dim that disagrees would only fail later inside onnxruntime, less clearly.
        if spec.rank_known and isinstance(spec.shape[axis], int) and spec.shape[axis] != dim:
            raise ValueError(
                f"input_shapes[{spec.name!r}][{axis}] is {dim} but the model fixes that dim "
                f"at {spec.shape[axis]}"
            )
    return list(shape)


def _random_array(
    rng: np.random.Generator, dtype: np.dtype, shape: list[int], name: str
) -> np.ndarray:
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 10, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    raise ValueError(f"cannot synthesize data for input {name!r} of dtype {dtype}")


def synthetic_inputs(
    inputs: list[TensorSpec], shapes: dict[str, list[int]], *, samples: int, seed: int
) -> list[dict[str, np.ndarray]]:
    """`samples` feeds: floats ~ N(0, 1), ints uniform in [0, 10), bools fair coin flips."""
    if samples < 0:
        raise ValueError(f"samples must be >= 0, got {samples}")
    dtypes: dict[str, np.dtype] = {}
    for spec in inputs:
        if spec.name not in shapes:
            raise ValueError(f"no shape given for input {spec.name!r}")
        try:
            dtypes[spec.name] = np.dtype(spec.dtype)
        except TypeError as exc:
            raise ValueError(
                f"cannot synthesize data for input {spec.name!r} of dtype {spec.dtype}"
            ) from exc
    # One generator drawn in a fixed order: the same seed gives the same feeds everywhere.
    rng = np.random.default_rng(seed)
    return [
        {
            spec.name: _random_array(rng, dtypes[spec.name], shapes[spec.name], spec.name)
            for spec in inputs
        }
        for _ in range(samples)
    ]
