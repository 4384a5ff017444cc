"""Validation: the one place where inputs are checked, on the host and in traces.

Every entry point that takes data or hyperparameters (``fit``, ``evaluate``,
``solve_lbfgs``, `jaxsoft.experiment.Config`, the CLI, `jaxsoft.data.load`)
checks them here, once, and raises a `ValueError` or `TypeError` that says
what is wrong and how to fix it. Inside ``jit`` nothing can raise, so nothing
reaches compiled code unchecked.

NumPy integers are accepted wherever a Python int is, and NumPy floats
wherever a Python float is; bools are refused as numbers.

The math modules (`jaxsoft.model`, `losses`, `metrics`, `objective`) use the
checks that look only at static information (shapes and dtypes:
`check_floating`, `check_min_rank`, ...), so they fire the same way in eager
mode and while tracing under `jax.jit`. The one value check of labels,
`check_class_indices`, runs only on concrete (non-traced) labels: under
``jit`` XLA cannot raise, and the callers turn out-of-range labels into NaN
instead. This module imports no other module of jaxsoft but `errors`, so any
layer can use it.

Every error is an `InputError` (a ValueError) or an `InputTypeError` (a
TypeError), both `jaxsoft.JaxsoftError`s.
"""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

if TYPE_CHECKING:
    from jaxsoft import model

from jaxsoft.errors import JaxsoftError

__all__ = [
    "InputError",
    "InputTypeError",
    "as_array",
    "check_class_indices",
    "check_floating",
    "check_min_rank",
    "check_params",
    "compute_dtype",
    "concrete_value",
    "finite_float",
    "is_class_index_labels",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "validate_split",
]


class InputError(JaxsoftError, ValueError):
    """A bad input value: a wrong shape, a NaN, a label out of range."""


class InputTypeError(JaxsoftError, TypeError):
    """An input of the wrong type or dtype."""


def compute_dtype(dtype: jnp.dtype) -> jnp.dtype:
    """The dtype the losses compute in: at least float32 (bf16/f16 -> f32)."""
    return jnp.promote_types(dtype, jnp.float32)


def as_array(name: str, value: object) -> jax.Array:
    """``value`` as a `jax.Array`; a TypeError for strings and objects.

    NumPy data is checked before JAX sees it, so ``np.array(["a"])`` gets a
    message naming the argument instead of JAX's "Error interpreting argument".
    """
    if not isinstance(value, jax.Array):  # tracers are jax.Arrays too
        value = np.asarray(value)
        if not (jnp.issubdtype(value.dtype, jnp.number) or value.dtype == np.bool_):
            raise InputTypeError(f"{name} must be numeric, got dtype {value.dtype}.")
    return jnp.asarray(value)


def positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1 (NumPy integers too; not bools or floats)."""
    try:
        number = operator.index(value)  # int and np.integer, not float
    except TypeError:
        number = 0
    if isinstance(value, (bool, np.bool_)) or number < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}.")
    return number


def check_floating(name: str, x: jax.Array) -> None:
    """Raises TypeError unless ``x`` has a floating dtype."""
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise InputTypeError(
            f"{name} must be a floating-point array, got dtype {x.dtype}. "
            f"Convert it first, e.g. {name}.astype(jnp.float32)."
        )


def check_min_rank(name: str, x: jax.Array, rank: int) -> None:
    """Raises ValueError unless ``x`` has at least ``rank`` axes."""
    if x.ndim < rank:
        raise InputError(
            f"{name} must have at least {rank} dimension(s) with classes on the "
            f"last axis, got shape {x.shape}."
        )


def is_class_index_labels(
    logits_shape: tuple[int, ...],
    labels: jax.Array,
    batch_shape: tuple[int, ...] | None = None,
) -> bool:
    """Decides how ``labels`` encodes the targets for logits of shape (..., q).

    Returns True for integer class indices of shape ``batch_shape`` (the
    logits' shape without the class axes; by default all but the last), False
    for probability vectors of the logits' shape. Any other layout raises a
    TypeError/ValueError that names the two accepted ones.
    """
    logits_shape = tuple(logits_shape)
    if batch_shape is None:
        batch_shape = logits_shape[:-1]
    batch_shape = tuple(batch_shape)
    if labels.shape == logits_shape and labels.ndim > 0:
        if not (
            jnp.issubdtype(labels.dtype, jnp.floating)
            or jnp.issubdtype(labels.dtype, jnp.integer)
            or labels.dtype == jnp.bool_
        ):
            raise InputTypeError(
                f"probability labels have unsupported dtype {labels.dtype}."
            )
        return False
    if labels.shape == batch_shape:
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise InputTypeError(
                f"labels of shape {labels.shape} (one per example) must be "
                f"integer class indices, got dtype {labels.dtype}. Cast them "
                "with labels.astype(jnp.int32), or pass probability vectors of "
                f"shape {logits_shape}."
            )
        return True
    raise InputError(
        f"labels of shape {labels.shape} do not match logits of shape "
        f"{logits_shape}: pass integer class indices of shape {batch_shape} "
        f"or probability vectors of shape {logits_shape}."
    )


def concrete_value(x: object) -> np.ndarray | None:
    """``x`` as a NumPy array when its values are known now, else None.

    None for tracers (inside `jax.jit`, `jax.vmap`, ...) and for arrays
    sharded over devices of other processes.
    """
    if isinstance(x, jax.core.Tracer):
        return None
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return None
    return np.asarray(x)


def check_class_indices(
    labels: object, num_classes: int, included: np.ndarray | None = None
) -> None:
    """Raises ValueError if concrete ``labels`` hold an index outside [0, q).

    Does nothing for traced labels: there the caller returns NaN instead.

    Args:
      labels: integer class indices (the caller's original object: NumPy
        values are checked before any cast to int32 could wrap them).
      num_classes: q.
      included: optional bool array of the labels' shape; labels where it is
        False (examples masked out with ``where``) are not checked.
    """
    values = concrete_value(labels)
    if values is None:
        return
    bad = (values < 0) | (values >= num_classes)
    if included is not None:
        bad = bad & included
    if np.any(bad):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        at = "" if not first else f" at index {first[0] if len(first) == 1 else first}"
        raise InputError(
            f"label {values[first]}{at} is not a class index in the valid "
            f"range [0, {num_classes}) for {num_classes} classes; "
            f"{int(np.sum(bad))} of {values.size} label(s) are out of range."
        )


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not (
        isinstance(value, (bool, np.bool_))
    )


def non_negative_int(name: str, value: Any) -> int:
    """``value`` as an int >= 0, or a ValueError naming ``name``."""
    if not _is_integer(value) or value < 0:
        raise InputError(f"{name} must be an integer >= 0, got {value!r}.")
    return int(value)


def finite_float(name: str, value: Any) -> float:
    """``value`` as a finite float, or a ValueError naming ``name``."""
    if not _is_real(value) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}.")
    return float(value)


def non_negative_float(name: str, value: Any) -> float:
    """``value`` as a finite float >= 0, or a ValueError naming ``name``."""
    if not _is_real(value) or not math.isfinite(value) or value < 0:
        raise InputError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def positive_float(name: str, value: Any) -> float:
    """``value`` as a finite float > 0, or a ValueError naming ``name``."""
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a finite number > 0, got {value!r}.")
    return float(value)


def check_params(params: Any) -> model.Params:
    """``params`` if it is a `jaxsoft.Params` (TypeError otherwise)."""
    from jaxsoft import model  # model checks its inputs here: imported late

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
        raise InputError(
            f"x_{split} must have shape (n, d), got shape {x.shape}. Flatten "
            "images first, e.g. x.reshape(len(x), -1)."
        )
    if y.ndim != 1:
        raise InputError(
            f"y_{split} must be integer class labels of shape (n,), got shape "
            f"{y.shape}."
        )
    if x.shape[0] != y.shape[0]:
        raise InputError(
            f"x_{split} and y_{split} have different lengths: {x.shape[0]} "
            f"examples but {y.shape[0]} labels."
        )
    if x.shape[0] == 0:
        raise InputError(f"the {split} split is empty: there is nothing to use.")
    if num_features is not None and x.shape[1] != num_features:
        raise InputError(
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
        raise InputTypeError(
            f"x_{split} must be numeric, got dtype {x.dtype}. Convert it first, "
            "e.g. x.astype(np.float32)."
        )
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise InputTypeError(
            f"y_{split} must hold integer class indices, got dtype {y.dtype}. "
            "Convert with y.astype(np.int32)."
        )
    if is_float:
        finite, count, first = _all_finite(x)
        if not finite:
            raise InputError(
                f"x_{split} contains NaN or infinite features ({count} "
                f"example(s), the first at index {first}). Clean or drop them "
                "before training."
            )
    low, high = _label_range(y)
    if low < 0 or high >= num_classes:
        bad_value = low if low < 0 else high
        raise InputError(
            f"y_{split} has label {bad_value} outside [0, {num_classes}): labels "
            f"must be class indices 0..{num_classes - 1}."
        )
    if isinstance(x, jax.Array):
        x = x if is_float else x.astype(jnp.float32)
    else:
        x = x if is_float else x.astype(np.float32)
    y = y.astype(jnp.int32) if isinstance(y, jax.Array) else y.astype(np.int32)
    return x, y
