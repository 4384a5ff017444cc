"""Checks shared by the math modules.

Most checks here look only at static information (shapes and dtypes), so they
fire the same way in eager mode and while tracing under `jax.jit`. The one
value check, `check_class_indices`, runs only on concrete (non-traced) labels:
under ``jit`` XLA cannot raise, and the callers turn out-of-range labels into
NaN instead.
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np


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
            raise TypeError(f"{name} must be numeric, got dtype {value.dtype}.")
    return jnp.asarray(value)


def positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1 (NumPy integers too; not bools or floats)."""
    try:
        number = operator.index(value)  # int and np.integer, not float
    except TypeError:
        number = 0
    if isinstance(value, (bool, np.bool_)) or number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return number


def check_floating(name: str, x: jax.Array) -> None:
    """Raises TypeError unless ``x`` has a floating dtype."""
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{name} must be a floating-point array, got dtype {x.dtype}. "
            f"Convert it first, e.g. {name}.astype(jnp.float32)."
        )


def check_min_rank(name: str, x: jax.Array, rank: int) -> None:
    """Raises ValueError unless ``x`` has at least ``rank`` axes."""
    if x.ndim < rank:
        raise ValueError(
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
            raise TypeError(
                f"probability labels have unsupported dtype {labels.dtype}."
            )
        return False
    if labels.shape == batch_shape:
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise TypeError(
                f"labels of shape {labels.shape} (one per example) must be "
                f"integer class indices, got dtype {labels.dtype}. Cast them "
                "with labels.astype(jnp.int32), or pass probability vectors of "
                f"shape {logits_shape}."
            )
        return True
    raise ValueError(
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
        raise ValueError(
            f"label {values[first]}{at} is not a class index in the valid "
            f"range [0, {num_classes}) for {num_classes} classes; "
            f"{int(np.sum(bad))} of {values.size} label(s) are out of range."
        )
