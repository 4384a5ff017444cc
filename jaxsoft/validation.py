"""Host-side validation: the one place where inputs are checked before compiling.

Every entry point that takes data or hyperparameters (``fit``, ``evaluate``,
``solve_lbfgs``, `jaxsoft.experiment.Config`, the CLI, `jaxsoft.data.load`)
checks them here, once, and raises a `ValueError` or `TypeError` that says
what is wrong and how to fix it. Inside ``jit`` nothing can raise, so nothing
reaches compiled code unchecked.

NumPy integers are accepted wherever a Python int is, and NumPy floats
wherever a Python float is; bools are refused as numbers.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxsoft import model
from jaxsoft._validation import positive_int

__all__ = [
    "check_params",
    "finite_float",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "validate_split",
]


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not (
        isinstance(value, (bool, np.bool_))
    )


def non_negative_int(name: str, value: Any) -> int:
    """``value`` as an int >= 0, or a ValueError naming ``name``."""
    if not _is_integer(value) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}.")
    return int(value)


def finite_float(name: str, value: Any) -> float:
    """``value`` as a finite float, or a ValueError naming ``name``."""
    if not _is_real(value) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    return float(value)


def non_negative_float(name: str, value: Any) -> float:
    """``value`` as a finite float >= 0, or a ValueError naming ``name``."""
    if not _is_real(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def positive_float(name: str, value: Any) -> float:
    """``value`` as a finite float > 0, or a ValueError naming ``name``."""
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return float(value)


def check_params(params: Any) -> model.Params:
    """``params`` if it is a `jaxsoft.Params` (TypeError otherwise)."""
    model.check_params(params)
    return params


def _all_finite(x: Any) -> tuple[bool, int, int]:
    """(all finite?, examples with a non-finite entry, index of the first)."""
    if isinstance(x, jax.Array):
        # Checked where the data lives: only three scalars come to the host.
        bad_rows = ~jnp.all(jnp.isfinite(x), axis=1)
        count, first = jax.device_get(
            (jnp.sum(bad_rows), jnp.argmax(bad_rows).astype(jnp.int32))
        )
        return int(count) == 0, int(count), int(first)
    bad_rows = ~np.isfinite(x).all(axis=1)
    if not bad_rows.any():
        return True, 0, 0
    return False, int(bad_rows.sum()), int(np.argmax(bad_rows))


def _label_range(y: Any) -> tuple[int, int]:
    if isinstance(y, jax.Array):
        low, high = jax.device_get((jnp.min(y), jnp.max(y)))
        return int(low), int(high)
    return int(y.min()), int(y.max())


def _check_shapes(x: Any, y: Any, num_features: int | None, split: str) -> None:
    """Ranks, lengths, emptiness and the number of features of a split."""
    if x.ndim != 2:
        raise ValueError(
            f"x_{split} must have shape (n, d), got shape {x.shape}. Flatten "
            "images first, e.g. x.reshape(len(x), -1)."
        )
    if y.ndim != 1:
        raise ValueError(
            f"y_{split} must be integer class labels of shape (n,), got shape "
            f"{y.shape}."
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x_{split} and y_{split} have different lengths: {x.shape[0]} "
            f"examples but {y.shape[0]} labels."
        )
    if x.shape[0] == 0:
        raise ValueError(f"the {split} split is empty: there is nothing to use.")
    if num_features is not None and x.shape[1] != num_features:
        raise ValueError(
            f"x_{split} has {x.shape[1]} features but d = {num_features} are "
            "expected (the model's, or the training split's, number of features)."
        )


def validate_split(
    x: ArrayLike,
    y: ArrayLike,
    *,
    num_classes: int,
    num_features: int | None = None,
    split: str = "train",
) -> tuple[np.ndarray | jax.Array, np.ndarray | jax.Array]:
    """Checks one split of a dataset and returns it as (x floating, y int32).

    Args:
      x: features of shape (n, d): floating (bfloat16 and float16 included),
        integer or bool (converted to float32).
      y: integer class labels of shape (n,), each in [0, num_classes).
      num_classes: q.
      num_features: d expected by the parameters, if known.
      split: the split's name, for the messages ("train", "test", ...).

    Returns:
      ``(x, y)`` with x floating of shape (n, d) and y int32 of shape (n,).
      NumPy inputs stay NumPy arrays; `jax.Array` inputs stay where they are
      (their checks run on their device, and only scalars come back).

    Raises:
      TypeError: non-numeric features or non-integer labels.
      ValueError: empty split, wrong ranks, mismatched lengths, wrong number
        of features, NaN or infinite features, labels outside [0, q).
    """
    num_classes = positive_int("num_classes", num_classes)
    x = x if isinstance(x, jax.Array) else np.asarray(x)
    y = y if isinstance(y, jax.Array) else np.asarray(y)
    _check_shapes(x, y, num_features, split)
    # jnp.issubdtype also knows ml_dtypes' bfloat16, which NumPy does not.
    is_float = jnp.issubdtype(x.dtype, jnp.floating)
    if not (is_float or jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == np.bool_):
        raise TypeError(
            f"x_{split} must be numeric, got dtype {x.dtype}. Convert it first, "
            "e.g. x.astype(np.float32)."
        )
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(
            f"y_{split} must hold integer class indices, got dtype {y.dtype}. "
            "Convert with y.astype(np.int32)."
        )
    if is_float:
        finite, count, first = _all_finite(x)
        if not finite:
            raise ValueError(
                f"x_{split} contains NaN or infinite features ({count} "
                f"example(s), the first at index {first}). Clean or drop them "
                "before training."
            )
    low, high = _label_range(y)
    if low < 0 or high >= num_classes:
        bad_value = low if low < 0 else high
        raise ValueError(
            f"y_{split} has label {bad_value} outside [0, {num_classes}): labels "
            f"must be class indices 0..{num_classes - 1}."
        )
    if isinstance(x, jax.Array):
        x = x if is_float else x.astype(jnp.float32)
    else:
        x = x if is_float else x.astype(np.float32)
    y = y.astype(jnp.int32) if isinstance(y, jax.Array) else y.astype(np.int32)
    return x, y
