"""The exact engine's input checks: features, labels, weights, sets, strengths.

Every bad input to `jaxsoft.exact.solve` raises `SolveInputError` (a
ValueError, one line that says what is wrong). Features are checked through
`jaxsoft.validation.validate_split`, the project's one host-validation path;
memory-mapped or very large ones in row blocks, so they are never read into
memory whole, each process checking only its own rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import scipy.sparse as sp
from jax.typing import ArrayLike

from jaxsoft import validation, weights
from jaxsoft.errors import JaxsoftError

__all__ = [
    "SolveInputError",
    "check_l2",
    "checked_sets",
    "checked_weight",
    "default_num_classes",
    "validate_features",
]

_BLOCK_BYTES = 256 << 20  # validate large features in blocks of this size


class SolveInputError(JaxsoftError, ValueError):
    """A bad input to the exact engine or a probe: a wrong array, a bad strength."""


def _check_block(x: Any, y: Any, num_classes: int, split: str) -> tuple[Any, Any]:
    try:
        return validation.validate_split(x, y, num_classes=num_classes, split=split)
    except (TypeError, ValueError) as err:
        raise SolveInputError(str(err)) from None


def validate_features(
    x: Any, y: Any, *, num_classes: int, num_features: int | None, split: str
) -> tuple[Any, np.ndarray]:
    """Validates one split; returns ``(x, y int32)``.

    Small in-memory features come back as `validate_split` returns them;
    memory-mapped or large ones are checked in row blocks and returned as
    they are (integer features are cast to float32 inside the passes).
    """
    shape = getattr(x, "shape", None)
    if sp.issparse(x):
        return _validate_sparse(x, y, num_classes, num_features, split)
    if shape is not None and len(shape) == 2 and num_features not in (None, shape[1]):
        raise SolveInputError(
            f"x_{split} has {shape[1]} features but x_train has {num_features}."
        )
    blockwise = isinstance(x, np.memmap) or getattr(x, "nbytes", 0) > _BLOCK_BYTES
    if not blockwise or len(shape) != 2 or shape[0] == 0 or np.ndim(y) != 1:
        x, y = _check_block(x, y, num_classes, split)
        return x, np.asarray(y) if not isinstance(y, jax.Array) else y
    if shape[0] != len(y):
        raise SolveInputError(
            f"x_{split} and y_{split} have different lengths: {shape[0]} examples "
            f"but {len(y)} labels."
        )
    first, last = _own_rows(shape[0])
    step = max(1, _BLOCK_BYTES // max(1, x.itemsize * shape[1]))
    error = None
    try:
        for lo in range(first, last, step):
            hi = min(lo + step, last)
            name = split if (lo, hi) == (0, shape[0]) else f"{split}[{lo}:{hi}]"
            _check_block(x[lo:hi], y[lo:hi], num_classes, name)
    except SolveInputError as err:
        error = err
    _agree(error, split)
    return x, np.asarray(y, np.int32)


def _validate_sparse(
    x: Any, y: Any, num_classes: int, num_features: int | None, split: str
) -> tuple[Any, np.ndarray]:
    """`validate_features` for scipy.sparse features: their shape, their
    stored values (numeric, finite) and the labels; x is returned as given."""
    n, d = x.shape
    if num_features not in (None, d):
        raise SolveInputError(
            f"x_{split} has {d} features but x_train has {num_features}."
        )
    if np.ndim(y) != 1 or n != len(y):
        raise SolveInputError(
            f"x_{split} and y_{split} have different lengths: {n} examples but "
            f"{np.shape(y)[0] if np.ndim(y) else 0} labels."
        )
    kind = np.dtype(x.dtype).kind
    if kind not in "fiub":
        raise SolveInputError(
            f"x_{split} must be numeric, got dtype {x.dtype}. Convert it first, "
            "e.g. x.astype(np.float32)."
        )
    values = x.tocoo().data  # the stored values of any format (LIL, DOK too)
    if kind == "f" and not np.all(np.isfinite(values)):
        raise SolveInputError(
            f"x_{split} has NaN or infinite values; remove or impute them first."
        )
    _, y = _check_block(np.zeros((n, 1), np.float32), y, num_classes, split)
    return x, np.asarray(y, np.int32)


def _own_rows(n: int) -> tuple[int, int]:
    """This process's contiguous share ``[first, last)`` of n rows.

    With several processes each validates only its own rows, so a
    memory-mapped feature file is never read whole by one host.
    """
    count, index = jax.process_count(), jax.process_index()
    return n * index // count, n * (index + 1) // count


def _agree(error: SolveInputError | None, split: str) -> None:
    """Raises on every process when any process found bad rows."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.int32(error is not None))
        bad = np.flatnonzero(np.asarray(flags))
        if error is None and bad.size:
            raise SolveInputError(
                f"process {int(bad[0])} found bad rows in the {split} split; "
                "its message says which."
            )
    if error is not None:
        raise error


def check_l2(
    l2: ArrayLike | Sequence[float] | Sequence[Sequence[float]],
    *,
    per_set: bool = False,
    name: str = "l2",
    allow_zero: bool = False,
) -> np.ndarray:
    """The strengths as a float64 array (L,), each finite and > 0 (>= 0 with
    ``allow_zero``). With ``per_set``, a (G, L) array (one row of strengths
    per training set) is accepted too. ``name`` names them in errors."""
    values = np.atleast_1d(np.asarray(l2, dtype=object))
    if values.ndim not in ((1, 2) if per_set else (1,)) or values.size == 0:
        raise SolveInputError(
            f"{name} must list at least one strength, e.g. 1e-6 1e-4"
            + (", or one row of strengths per training set." if per_set else ".")
        )
    bound = ">= 0" if allow_zero else "> 0"
    for value in values.ravel():
        ok = isinstance(value, (int, float, np.integer, np.floating))
        ok = ok and not isinstance(value, bool) and np.isfinite(value)
        if not ok or value < 0 or (value == 0 and not allow_zero):
            raise SolveInputError(
                f"{name} strengths must be numbers {bound}, got {value!r}."
            )
    return values.astype(np.float64)


def checked_weight(
    sample_weight: ArrayLike | None, n: int, split: str
) -> np.ndarray | None:
    """Sample weights as a NumPy array (n,), or a `SolveInputError`."""
    try:
        w = weights.check_sample_weight(sample_weight, n, split=split)
    except (TypeError, ValueError) as err:
        raise SolveInputError(str(err)) from None
    return None if w is None else np.asarray(jax.device_get(w), np.float64)


def checked_sets(row_sets: Any, n: int) -> np.ndarray:
    """Training sets as a bool array (G, n), each non-empty."""
    if row_sets is None:
        return np.ones((1, n), bool)
    sets = np.asarray(row_sets)
    if sets.dtype != np.bool_ or sets.ndim != 2 or sets.shape[1] != n:
        raise SolveInputError(
            f"row_sets must be a bool array of shape (G, {n}), one row per "
            f"training set, got dtype {sets.dtype} and shape {sets.shape}."
        )
    empty = np.flatnonzero(~sets.any(axis=1))
    if empty.size:
        raise SolveInputError(f"training set {int(empty[0])} of row_sets is empty.")
    return sets


def default_num_classes(y: ArrayLike) -> int:
    """The largest label + 1 (at least 2); 2 where y is not integer labels."""
    y_host = np.asarray(y) if not isinstance(y, jax.Array) else y
    if y_host.ndim != 1 or y_host.size == 0 or y_host.dtype.kind not in "iu":
        return 2  # the validation reports what is wrong with y
    return max(2, int(y_host.max()) + 1)
