"""resolve_input_shapes and synthetic_inputs."""

from __future__ import annotations

import numpy as np
import pytest

from app.compression.graph.analysis import TensorSpec
from app.compression.graph.inputs import resolve_input_shapes, synthetic_inputs

SPECS = [
    TensorSpec(name="ids", dtype="int64", shape=["batch", "seq"]),
    TensorSpec(name="mask", dtype="bool", shape=["batch", "?"]),
    TensorSpec(name="pixels", dtype="float16", shape=[1, 3, 8, 8]),
]


def test_symbolic_and_unknown_dims_get_default() -> None:
    shapes = resolve_input_shapes(SPECS, None, 2)
    assert shapes == {"ids": [2, 2], "mask": [2, 2], "pixels": [1, 3, 8, 8]}


def test_overrides_win() -> None:
    shapes = resolve_input_shapes(SPECS, {"ids": [4, 128], "pixels": [1, 3, 8, 8]}, 1)
    assert shapes["ids"] == [4, 128] and shapes["mask"] == [1, 1]


def test_unknown_rank_accepts_any_override() -> None:
    spec = TensorSpec(name="x", dtype="float32", shape=[], rank_known=False)
    assert resolve_input_shapes([spec], {"x": [2, 5]}, 1) == {"x": [2, 5]}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nope": [1]}, "unknown input"),
        ({"ids": [4]}, "rank 1"),
        ({"ids": [4, 0]}, "positive integer"),
        ({"pixels": [1, 3, 16, 16]}, "fixes that dim at 8"),
    ],
)
def test_bad_overrides(overrides: dict[str, list[int]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_input_shapes(SPECS, overrides, 1)


def test_synthetic_inputs_dtypes_ranges_and_seed() -> None:
    shapes = resolve_input_shapes(SPECS, {"ids": [3, 50]}, 3)
    feeds = synthetic_inputs(SPECS, shapes, samples=2, seed=7)
    assert len(feeds) == 2
    ids, mask, pixels = feeds[0]["ids"], feeds[0]["mask"], feeds[0]["pixels"]
    assert ids.dtype == np.int64 and ids.shape == (3, 50)
    assert ids.min() >= 0 and ids.max() < 10
    assert mask.dtype == np.bool_ and mask.shape == (3, 3)
    assert pixels.dtype == np.float16 and pixels.shape == (1, 3, 8, 8)
    assert not np.array_equal(feeds[0]["ids"], feeds[1]["ids"])
    again = synthetic_inputs(SPECS, shapes, samples=2, seed=7)
    assert all(np.array_equal(again[1][k], feeds[1][k]) for k in feeds[1])


def test_synthetic_inputs_rejects_strings() -> None:
    spec = TensorSpec(name="text", dtype="string", shape=[1])
    with pytest.raises(ValueError, match="cannot synthesize"):
        synthetic_inputs([spec], {"text": [1]}, samples=1, seed=0)
