"""Which outputs are class scores, and how sequences of class scores are scored.

A sequence output (OCR, token tagging, speech frames) gives class scores per position:
[1, positions, classes] or [positions, 1, classes] per sample. Its labels are integer rows
[samples, positions], padded with negative values (or with the blank, given a blank index).
"""

from __future__ import annotations

import re

import numpy as np

Outputs = dict[str, list[np.ndarray]]  # output name -> one array per evaluation sample

# Float outputs named like these are vectors to compare, not class scores to take an argmax of.
_EMBEDDING_NAME = re.compile(r"embed|hidden|feature|pool|latent|vector", re.IGNORECASE)


def may_be_scores(name: str) -> bool:
    """False for outputs whose name says embedding or hidden state."""
    return _EMBEDDING_NAME.search(name) is None


def position_scores(array: np.ndarray) -> np.ndarray | None:
    """One sample's [positions, classes] from [1, T, C] or [T, 1, C] floats; None otherwise."""
    if array.dtype.kind != "f" or array.ndim != 3 or array.shape[2] < 2:
        return None
    if array.shape[0] == 1:
        return array[0]
    if array.shape[1] == 1:
        return array[:, 0]
    return None


def sequence_output(outputs: Outputs) -> str | None:
    """The first output shaped like class scores per position in every sample."""
    for name, arrays in outputs.items():
        if (
            arrays
            and may_be_scores(name)
            and all(position_scores(a) is not None for a in arrays)
            and len({a.shape[-1] for a in arrays}) == 1
        ):
            return name
    return None


def decode(path: np.ndarray, blank: int | None) -> np.ndarray:
    """The argmax path as is; with a blank index, repeats collapsed and blanks dropped (CTC)."""
    if blank is None or path.size == 0:
        return path
    kept = np.concatenate([[True], path[1:] != path[:-1]])
    collapsed = path[kept]
    return collapsed[collapsed != blank]


def label_sequence(row: np.ndarray, blank: int | None) -> np.ndarray:
    """One label row without its padding: negative values, and the blank when one is given."""
    kept = row >= 0
    if blank is not None:
        kept &= row != blank
    return row[kept]


def sequence_metrics(
    arrays: list[np.ndarray], labels: np.ndarray, blank: int | None
) -> dict[str, float]:
    """exact_match and position_accuracy of per-position scores against label rows.

    Without a blank index the argmax path is compared position by position with the labelled
    positions (positions past the labels are not scored); with one, the decoded sequence must
    equal the label sequence, length included, and positions compare in decoded order.
    """
    exact = hits = total = 0
    for array, row in zip(arrays, labels, strict=True):
        scores = position_scores(array)
        if scores is None:
            raise ValueError(f"not class scores per position: {array.shape}")
        predicted = decode(np.argmax(scores, axis=-1), blank)
        truth = label_sequence(np.asarray(row).ravel(), blank)
        aligned = np.full(truth.shape, -1, dtype=np.int64)
        shared = min(truth.size, predicted.size)
        aligned[:shared] = predicted[:shared]
        matches = int(np.count_nonzero(aligned == truth))
        hits += matches
        total += truth.size
        whole = matches == truth.size
        exact += int(whole and (blank is None or predicted.size == truth.size))
    count = len(arrays)
    return {
        "exact_match": exact / count if count else 0.0,
        "position_accuracy": hits / total if total else (exact / count if count else 0.0),
    }


def sequence_agreement(reference: list[np.ndarray], test: list[np.ndarray], blank: int) -> float:
    """Share of samples whose CTC-decoded sequence is the same in both."""
    same = 0
    for a, b in zip(reference, test, strict=True):
        ref, new = position_scores(a), position_scores(b)
        if ref is None or new is None:
            raise ValueError(f"cannot compare position scores {a.shape} with {b.shape}")
        before, after = (decode(np.argmax(scores, axis=-1), blank) for scores in (ref, new))
        same += int(np.array_equal(before, after))
    return same / len(reference) if reference else 1.0


def position_agreement(reference: list[np.ndarray], test: list[np.ndarray]) -> float:
    """Share of positions, over all samples, whose argmax class is the same in both."""
    same = total = 0
    for a, b in zip(reference, test, strict=True):
        ref, new = position_scores(a), position_scores(b)
        if ref is None or new is None or ref.shape != new.shape:
            raise ValueError(f"cannot compare position scores {a.shape} with {b.shape}")
        same += int(np.count_nonzero(np.argmax(ref, axis=-1) == np.argmax(new, axis=-1)))
        total += ref.shape[0]
    return same / total if total else 1.0
