"""Evaluation inputs, output fidelity between two models, and task accuracy against labels."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from app.compression.graph.analysis import TensorSpec
from app.compression.graph.inputs import Constants, synthetic_inputs
from app.compression.graph.npz import check_fits_model, inspect_dataset, load_labels, load_samples
from app.compression.measure import sequences
from app.compression.measure.metrics import (
    Accuracy,
    AccuracyMetric,
    Fidelity,
    MetricChange,
    ModelAccuracy,
)
from app.compression.measure.metrics_math import (
    ErrorAccumulator,
    mae,
    mse,
    top1_agreement,
    topk_accuracy,
)

Outputs = dict[str, list[np.ndarray]]  # output name -> one array per evaluation sample
InputSource = Literal["dataset", "synthetic"]


def evaluation_samples(
    inputs: list[TensorSpec],
    shapes: dict[str, list[int]],
    dataset_path: Path | None,
    *,
    synthetic: int,
    seed: int,
    constants: Constants | None = None,
) -> tuple[list[dict[str, np.ndarray]], np.ndarray | None, InputSource]:
    """(feeds, labels or None, "dataset" | "synthetic"): every dataset sample, one per feed.

    `constants` (the job's input_values) go into every feed, with the dataset or without.
    """
    if dataset_path is None:
        feeds = synthetic_inputs(inputs, shapes, samples=synthetic, seed=seed, constants=constants)
        return feeds, None, "synthetic"
    # Raises DatasetMismatchError (a ValueError) with the reasons when it does not fit.
    check_fits_model(inspect_dataset(dataset_path), inputs, given=set(constants or {}))
    feeds = load_samples(dataset_path, inputs, constants=constants)
    labels = load_labels(dataset_path)
    return feeds, labels, "dataset"


def as_feed(sample: dict[str, np.ndarray], dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    """The sample in the model's declared input dtypes (fp16 models may want float16)."""
    return {name: arr.astype(dtypes[name], copy=False) for name, arr in sample.items()}


def run_outputs_within(
    sessions: list[Any],
    feeds: list[dict[str, np.ndarray]],
    labels: np.ndarray | None,
    dtypes: list[dict[str, str]],
    deadline: float,
) -> tuple[list[Outputs], np.ndarray | None, list[str]]:
    """(every session's outputs, the labels of the samples run, warnings) until `deadline`.

    The sessions take each feed in turn, so all of them cover the same samples: at least one
    (time.monotonic past `deadline` stops the rest), and the labels are cut to match.
    """
    names = [[o.name for o in session.get_outputs()] for session in sessions]
    outputs: list[Outputs] = [{name: [] for name in side} for side in names]
    done = 0
    for feed in feeds:
        if done > 0 and time.monotonic() >= deadline:
            break
        for session, side, dtype, out in zip(sessions, names, dtypes, outputs, strict=True):
            for name, value in zip(side, session.run(side, as_feed(feed, dtype)), strict=True):
                out[name].append(np.asarray(value))
        done += 1
    if done == len(feeds):
        return outputs, labels, []
    note = f"evaluated {done} of {len(feeds)} samples: the time budget ran out"
    return outputs, None if labels is None else labels[:done], [note]


def classifier_output(outputs: Outputs) -> str | None:
    """The first output shaped like class scores: float, 2-D [batch, classes >= 2], and not
    named like an embedding (those are compared by relative error, not argmax)."""
    for name, arrays in outputs.items():
        if not sequences.may_be_scores(name):
            continue
        if arrays and all(a.ndim == 2 and a.shape[1] >= 2 and a.dtype.kind == "f" for a in arrays):
            return name
    return None


def compare_outputs(
    reference: Outputs, test: Outputs, inputs: InputSource, blank_index: int | None = None
) -> tuple[Fidelity | None, list[str]]:
    """Abs error, cosine similarity and SQNR over all outputs; top-1 agreement for classifiers,
    position agreement for sequence scores (and, with a blank index, sequence agreement)."""
    acc = ErrorAccumulator()
    # Sequence/map outputs (e.g. a ZipMap of class probabilities) have no elementwise error.
    numeric = {
        n: arrays for n, arrays in reference.items() if all(a.dtype.kind in "biuf" for a in arrays)
    }
    if not numeric:
        return None, ["no numeric outputs to compare"]
    for name, ref_arrays in numeric.items():
        for i, (a, b) in enumerate(zip(ref_arrays, test[name], strict=True)):
            if a.shape != b.shape:
                return None, [
                    f"output {name!r} of sample {i} changed shape: {a.shape} -> {b.shape}"
                ]
            acc.add(a, b)
    samples = len(next(iter(reference.values()), []))
    result = Fidelity(**dict(acc.result()), samples=samples, inputs=inputs)
    warnings = []
    scores = classifier_output(reference)
    if scores is not None and classifier_output({scores: test[scores]}) is not None:
        stacked = [np.concatenate(side[scores]) for side in (reference, test)]
        result.top1_agreement = top1_agreement(*stacked)
    per_position = sequences.sequence_output(reference)
    if per_position is not None and sequences.sequence_output({per_position: test[per_position]}):
        try:
            result.position_agreement = sequences.position_agreement(
                reference[per_position], test[per_position]
            )
            if blank_index is not None:
                result.sequence_agreement = sequences.sequence_agreement(
                    reference[per_position], test[per_position], blank_index
                )
        except ValueError as error:
            warnings.append(f"position agreement left out: {error}")
    if acc.nonfinite_mismatches:
        result.nonfinite_mismatches = count = acc.nonfinite_mismatches
        warnings.append(f"compressed model gives {count} inf/nan values the original does not")
    return result, warnings


def task_metrics(
    outputs: Outputs, labels: np.ndarray, blank_index: int | None = None
) -> tuple[dict[str, float], list[str]]:
    """The metrics that fit the labels, the primary one first: top1 (+ top5 with >= 5
    classes) for int labels; exact_match or position_accuracy (first with a blank index) and
    the other for int label rows [samples, positions]; mse and mae for float targets."""
    count = len(next(iter(outputs.values()), []))
    if len(labels) != count:
        return {}, [f"{len(labels)} labels for {count} evaluation samples; accuracy left out"]
    if labels.dtype.kind in "iu" and labels.ndim == 2 and labels.shape[1] > 1:
        return _sequence_task_metrics(outputs, labels, blank_index)
    if labels.dtype.kind in "iub":
        name = classifier_output(outputs)
        scores = np.concatenate(outputs[name]) if name is not None else None
        if scores is None or scores.shape[0] != count:
            return {}, ["integer labels but no output shaped [1, classes] per sample"]
        metrics = {"top1": topk_accuracy(scores, labels, 1)}
        if scores.shape[1] >= 5:
            metrics["top5"] = topk_accuracy(scores, labels, 5)
        return metrics, []
    first = next(iter(outputs.values()))
    prediction = np.stack([a.ravel() for a in first]) if first else np.zeros((0, 0))
    target = labels.reshape(count, -1)
    if prediction.shape != target.shape:
        return {}, [
            f"float targets {target.shape} do not match the first output {prediction.shape}"
        ]
    return {"mse": mse(prediction, target), "mae": mae(prediction, target)}, []


def _sequence_task_metrics(
    outputs: Outputs, labels: np.ndarray, blank_index: int | None
) -> tuple[dict[str, float], list[str]]:
    name = sequences.sequence_output(outputs)
    if name is None:
        return {}, ["sequence labels but no output shaped [1, positions, classes] per sample"]
    scores = sequences.sequence_metrics(outputs[name], labels, blank_index)
    primary = "exact_match" if blank_index is not None else "position_accuracy"
    return {primary: scores[primary], **scores}, []


_PRIMARY: dict[str, AccuracyMetric] = {
    "top1": "top1", "exact_match": "exact_match",
    "position_accuracy": "position_accuracy", "mse": "mse",
}  # fmt: skip


def _primary(metrics: dict[str, float]) -> AccuracyMetric:
    """task_metrics puts the primary metric first."""
    return _PRIMARY[next(iter(metrics))]


def accuracy_block(
    original: dict[str, float], compressed: dict[str, float], samples: int
) -> Accuracy:
    """The primary metric of both with its delta (compressed - original), the others nested."""
    primary = _primary(original)

    def change(name: str) -> MetricChange | None:
        if name not in original:
            return None
        before, after = original[name], compressed[name]
        return MetricChange(original=before, compressed=after, delta=after - before)

    return Accuracy(
        metric=primary,
        original=original[primary],
        compressed=compressed[primary],
        delta=compressed[primary] - original[primary],
        samples=samples,
        top5=change("top5"),
        mae=change("mae"),
        exact_match=change("exact_match") if primary != "exact_match" else None,
        position_accuracy=change("position_accuracy") if primary != "position_accuracy" else None,
    )


def single_accuracy(metrics: dict[str, float], samples: int) -> ModelAccuracy:
    """The primary metric of one model and its others (top5, or mae)."""
    primary = _primary(metrics)
    return ModelAccuracy(
        metric=primary,
        value=metrics[primary],
        samples=samples,
        top5=metrics.get("top5"),
        mae=metrics.get("mae"),
        exact_match=metrics.get("exact_match") if primary != "exact_match" else None,
        position_accuracy=(
            metrics.get("position_accuracy") if primary != "position_accuracy" else None
        ),
    )
