"""Concrete input shapes, constant input values and synthetic input data for running a model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from app.compression.graph.analysis import TensorSpec

# input_values are small control inputs (a sample rate, an initial RNN state), not data.
MAX_INPUT_VALUE_ELEMENTS = 1 << 16

Constants = dict[str, np.ndarray]  # input name -> the one value fed with every sample


def constant_inputs(inputs: list[TensorSpec], values: Mapping[str, Any] | None) -> Constants:
    """A job's input_values as arrays in each input's dtype; ValueError says what is wrong."""
    if not values:
        return {}
    specs = {spec.name: spec for spec in inputs}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ValueError(
            f"input_values names unknown input(s) {unknown}; the model's inputs are {sorted(specs)}"
        )
    return {name: _constant_array(specs[name], value) for name, value in values.items()}


def _constant_array(spec: TensorSpec, value: Any) -> np.ndarray:
    where = f"input_values[{spec.name!r}]"
    try:
        dtype = np.dtype(spec.dtype)
    except TypeError as exc:
        raise ValueError(f"{where}: the input's dtype {spec.dtype} takes no JSON value") from exc
    if dtype.kind not in "biuf":
        raise ValueError(f"{where}: the input's dtype {spec.dtype} takes no JSON value")
    try:
        given = np.array(value)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ValueError(f"{where}: not a number or a nested list of numbers ({exc})") from exc
    # Strings and None come out as str or object arrays; ragged lists raise above.
    if given.dtype.kind not in "biuf":
        raise ValueError(f"{where}: give a number or a nested list of numbers")
    if given.size > MAX_INPUT_VALUE_ELEMENTS:
        raise ValueError(
            f"{where} has {given.size} elements; input_values are for small constants "
            f"(at most {MAX_INPUT_VALUE_ELEMENTS}): put larger ones in a dataset as "
            f"'const:{spec.name}'"
        )
    _check_fits_dtype(where, given, dtype)
    check_constant_shape(spec, list(given.shape), where)
    return given.astype(dtype)


def _check_fits_dtype(where: str, given: np.ndarray, dtype: np.dtype) -> None:
    if dtype.kind == "b":
        if not np.isin(given, (0, 1)).all():
            raise ValueError(f"{where}: the input is bool; give true/false or 0/1")
        return
    if dtype.kind in "iu":
        if given.dtype.kind == "f" and not (np.isfinite(given).all() and (given % 1 == 0).all()):
            raise ValueError(f"{where}: the input is {dtype}; give whole numbers")
        info = np.iinfo(dtype)
        if given.size and (given.min() < info.min or given.max() > info.max):
            raise ValueError(f"{where}: values outside the range of {dtype}")
    elif given.size and given.dtype.kind != "b":
        finite = np.abs(given[np.isfinite(given)]).astype(np.float64)
        if finite.size and finite.max() > np.finfo(dtype).max:
            raise ValueError(f"{where}: values outside the range of {dtype}")


def check_constant_shape(spec: TensorSpec, shape: list[int], where: str) -> None:
    """A constant is fed as it is: its rank and fixed dims must be the model input's own."""
    if not spec.rank_known:
        return
    wanted = f"the model's input {spec.name!r} has shape {spec.shape}"
    if len(shape) != len(spec.shape):
        raise ValueError(f"{where} has shape {shape} (rank {len(shape)}); {wanted}")
    for axis, (want, got) in enumerate(zip(spec.shape, shape, strict=True)):
        if isinstance(want, int) and want != got:
            raise ValueError(f"{where} has {got} at axis {axis}; {wanted}")
        if got < 1:
            raise ValueError(f"{where} is empty at axis {axis}; {wanted}")


def resolve_input_shapes(
    inputs: list[TensorSpec],
    overrides: dict[str, list[int]] | None,
    default_dim: int,
    constants: Constants | None = None,
) -> dict[str, list[int]]:
    """A concrete shape per input: constants and overrides win, open dims become default_dim."""
    if default_dim < 1:
        raise ValueError(f"default_dim must be >= 1, got {default_dim}")
    overrides = dict(overrides or {})
    constants = constants or {}
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
        elif spec.name not in constants:
            shapes[spec.name] = [d if isinstance(d, int) else default_dim for d in spec.shape]
        if spec.name in constants:
            value_shape = list(constants[spec.name].shape)
            if shapes.get(spec.name, value_shape) != value_shape:
                raise ValueError(
                    f"input_shapes[{spec.name!r}] is {shapes[spec.name]} but its input_values "
                    f"entry has shape {value_shape}; leave one of them out"
                )
            shapes[spec.name] = value_shape
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
    inputs: list[TensorSpec],
    shapes: dict[str, list[int]],
    *,
    samples: int,
    seed: int,
    constants: Constants | None = None,
) -> list[dict[str, np.ndarray]]:
    """`samples` feeds: floats ~ N(0, 1), ints uniform in [0, 10), bools fair coin flips.

    An input in `constants` gets its value in every feed: control inputs (a sample rate that
    picks an If branch) must not be drawn at random.
    """
    if samples < 0:
        raise ValueError(f"samples must be >= 0, got {samples}")
    constants = constants or {}
    drawn = [spec for spec in inputs if spec.name not in constants]
    dtypes: dict[str, np.dtype] = {}
    for spec in drawn:
        if spec.name not in shapes:
            raise ValueError(f"no shape given for input {spec.name!r}")
        try:
            dtypes[spec.name] = np.dtype(spec.dtype)
        except TypeError as exc:
            raise ValueError(
                f"cannot synthesize data for input {spec.name!r} of dtype {spec.dtype}"
            ) from exc
    fixed = {spec.name: constants[spec.name] for spec in inputs if spec.name in constants}
    # One generator drawn in a fixed order: the same seed gives the same feeds everywhere.
    rng = np.random.default_rng(seed)
    return [
        {
            **{
                spec.name: _random_array(rng, dtypes[spec.name], shapes[spec.name], spec.name)
                for spec in drawn
            },
            **fixed,
        }
        for _ in range(samples)
    ]
