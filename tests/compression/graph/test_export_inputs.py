"""Inputs as real exports declare them: -1 dims, scalars and states without a sample axis,
given per sample, as `const:` arrays in an .npz, or as a job's JSON input_values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.compression.graph.analysis import TensorSpec, inspect_model
from app.compression.graph.inputs import constant_inputs, resolve_input_shapes, synthetic_inputs
from app.compression.graph.npz import (
    DatasetError,
    DatasetMismatchError,
    calibration_samples,
    check_fits_model,
    inspect_dataset,
    load_samples,
)
from tests.builders_exports import build_minus_one_batch_classifier
from tests.builders_recurrent import SILERO_CHUNK, SILERO_HIDDEN, SILERO_RATE, build_silero_like_vad

SILERO = [
    TensorSpec(name="input", dtype="float32", shape=["?", SILERO_CHUNK]),
    TensorSpec(name="state", dtype="float32", shape=[2, "?", SILERO_HIDDEN]),
    TensorSpec(name="sr", dtype="int64", shape=[]),
]


def _npz(path: Path, **arrays: Any) -> Path:
    np.savez(path, **arrays)
    return path


def test_a_dim_stored_as_minus_one_is_symbolic(tmp_path: Path) -> None:
    info = inspect_model(build_minus_one_batch_classifier(tmp_path / "cls.onnx"))

    assert info.inputs[0].shape == ["?", 3, "?", "?"]
    assert info.outputs[0].shape == ["?", 4]
    # Specs recorded before the rule (a model row holding -1) read the same way.
    assert TensorSpec(name="x", dtype="float32", shape=[-1, 3, 0, 8]).shape == ["?", 3, "?", 8]


def test_minus_one_dims_get_the_default_or_the_shape_a_user_gives(tmp_path: Path) -> None:
    specs = inspect_model(build_minus_one_batch_classifier(tmp_path / "cls.onnx")).inputs

    assert resolve_input_shapes(specs, None, 2) == {"x": [2, 3, 2, 2]}
    assert resolve_input_shapes(specs, {"x": [1, 3, 48, 192]}, 1) == {"x": [1, 3, 48, 192]}
    feeds = synthetic_inputs(specs, {"x": [1, 3, 48, 192]}, samples=2, seed=0)
    assert feeds[0]["x"].shape == (1, 3, 48, 192)


def test_input_values_become_arrays_in_the_inputs_dtypes() -> None:
    state = np.zeros((2, 1, SILERO_HIDDEN)).tolist()

    constants = constant_inputs(SILERO, {"sr": SILERO_RATE, "state": state})

    assert constants["sr"].dtype == np.int64 and constants["sr"].shape == ()
    assert int(constants["sr"]) == SILERO_RATE
    assert constants["state"].dtype == np.float32
    assert constants["state"].shape == (2, 1, SILERO_HIDDEN)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rate": 16000}, "unknown input"),
        ({"sr": [16000]}, "rank 1"),
        ({"state": [[[0.0] * SILERO_HIDDEN]]}, "has 1 at axis 0"),
        ({"sr": "16000"}, "a number or a nested list"),
        ({"sr": 16000.5}, "whole numbers"),
        ({"state": [[[0.0]], [[0.0, 1.0]]]}, "not a number or a nested list"),
        ({"input": [[0.0] * 70000]}, "small constants"),
    ],
)
def test_bad_input_values_say_what_is_wrong(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        constant_inputs(SILERO, values)


def test_input_values_fix_the_shape_and_conflicting_input_shapes_are_refused() -> None:
    constants = constant_inputs(SILERO, {"state": np.zeros((2, 3, SILERO_HIDDEN)).tolist()})

    shapes = resolve_input_shapes(SILERO, {"input": [3, SILERO_CHUNK]}, 1, constants)

    assert shapes["state"] == [2, 3, SILERO_HIDDEN]
    with pytest.raises(ValueError, match="leave one of them out"):
        resolve_input_shapes(SILERO, {"state": [2, 1, SILERO_HIDDEN]}, 1, constants)


def test_synthetic_feeds_use_the_constant_values_so_if_takes_the_chosen_branch() -> None:
    drawn, _ = calibration_samples(
        SILERO, None, num_samples=8, input_shapes=None, default_dim=1, seed=0
    )
    given, synthetic = calibration_samples(
        SILERO, None, num_samples=8, input_shapes=None, default_dim=1, seed=0,
        input_values={"sr": SILERO_RATE},
    )  # fmt: skip

    assert synthetic
    assert all(int(feed["sr"]) != SILERO_RATE for feed in drawn)  # random ints in [0, 10)
    assert all(int(feed["sr"]) == SILERO_RATE and feed["sr"].dtype == np.int64 for feed in given)
    assert all(feed["state"].shape == (2, 1, SILERO_HIDDEN) for feed in given)


def test_const_arrays_are_fed_with_every_sample(tmp_path: Path) -> None:
    rows = np.random.default_rng(0).standard_normal((5, SILERO_CHUNK)).astype(np.float32)
    path = _npz(
        tmp_path / "cal.npz",
        input=rows,
        **{
            "const:state": np.ones((2, 1, SILERO_HIDDEN), np.float32),
            "const:sr": np.array(SILERO_RATE),
        },
    )

    info = inspect_dataset(path)
    check_fits_model(info, SILERO)
    feeds = load_samples(path, SILERO, limit=4)

    assert info.num_samples == 5
    assert len(feeds) == 4
    assert feeds[1]["input"].shape == (1, SILERO_CHUNK)
    np.testing.assert_array_equal(feeds[1]["input"][0], rows[1])
    assert all(f["state"].shape == (2, 1, SILERO_HIDDEN) for f in feeds)
    assert all(int(f["sr"]) == SILERO_RATE for f in feeds)


def test_an_input_without_sample_axis_may_be_given_per_sample_on_an_axis_of_its_own(
    tmp_path: Path,
) -> None:
    states = np.arange(3 * 2 * SILERO_HIDDEN, dtype=np.float32).reshape(3, 2, 1, SILERO_HIDDEN)
    path = _npz(
        tmp_path / "cal.npz",
        input=np.zeros((3, SILERO_CHUNK), np.float32),
        state=states,
        sr=np.full(3, SILERO_RATE),
    )

    check_fits_model(inspect_dataset(path), SILERO)
    feeds = load_samples(path, SILERO)

    np.testing.assert_array_equal(feeds[2]["state"], states[2])
    assert feeds[2]["sr"].shape == () and int(feeds[2]["sr"]) == SILERO_RATE


def test_json_values_win_over_the_dataset_and_stand_in_for_missing_arrays(tmp_path: Path) -> None:
    path = _npz(
        tmp_path / "cal.npz",
        input=np.zeros((2, SILERO_CHUNK), np.float32),
        **{"const:state": np.zeros((2, 1, SILERO_HIDDEN), np.float32)},
    )
    with pytest.raises(DatasetMismatchError, match="no array for input 'sr'"):
        check_fits_model(inspect_dataset(path), SILERO)

    check_fits_model(inspect_dataset(path), SILERO, given={"sr"})
    feeds, synthetic = calibration_samples(
        SILERO, path, num_samples=8, input_shapes=None, default_dim=1, seed=0,
        input_values={"sr": 8000},
    )  # fmt: skip

    assert not synthetic and len(feeds) == 2
    assert all(int(f["sr"]) == 8000 for f in feeds)


def test_a_state_saved_without_sample_axis_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = _npz(
        tmp_path / "cal.npz",
        input=np.zeros((2, SILERO_CHUNK), np.float32),
        state=np.zeros((2, 1, SILERO_HIDDEN), np.float32),
        **{"const:sr": np.array(SILERO_RATE)},
    )

    with pytest.raises(DatasetMismatchError) as caught:
        check_fits_model(inspect_dataset(path), SILERO)

    message = str(caught.value)
    assert "'state' has shape [2, 1, 32]" in message
    assert "save it as 'const:state'" in message and "input_values" in message
    assert "[samples, 2, ?, 32]" in message


def test_a_scalar_saved_as_per_sample_array_is_refused_at_upload_with_the_fix(
    tmp_path: Path,
) -> None:
    path = _npz(tmp_path / "cal.npz", input=np.zeros((2, 4), np.float32), sr=np.array(16000))

    with pytest.raises(DatasetError, match=r"\['sr'\] have no sample axis.*'const:sr'"):
        inspect_dataset(path)


def test_ragged_sample_counts_mention_constants(tmp_path: Path) -> None:
    path = _npz(
        tmp_path / "cal.npz",
        input=np.zeros((5, SILERO_CHUNK), np.float32),
        state=np.zeros((2, 1, SILERO_HIDDEN), np.float32),
    )

    with pytest.raises(DatasetError, match="const:<input>"):
        inspect_dataset(path)


def test_silero_like_model_declares_its_inputs_as_exported(tmp_path: Path) -> None:
    info = inspect_model(build_silero_like_vad(tmp_path / "vad.onnx"))

    assert [(s.name, s.dtype, s.shape) for s in info.inputs] == [
        (s.name, s.dtype, s.shape) for s in SILERO
    ]
    assert info.op_counts["If"] == 1 and info.op_counts["LSTM"] == 2
