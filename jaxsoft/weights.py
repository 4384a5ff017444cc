"""Sample weights and class weights, checked once on the host.

Weights follow scikit-learn: the objective is normalised by their sum,

    L(W, b) = sum_i w_i CE_i / sum_i w_i + (l2 / 2) ||W||^2,

so integer weights equal repeated rows, zero weights equal dropped rows, and
multiplying every weight by a constant changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_sample_weight", "class_weight", "sample_weight_of_classes"]


def check_sample_weight(
    sample_weight: Any, num_examples: int, *, split: str = "train"
) -> np.ndarray | jax.Array | None:
    """``sample_weight`` checked for a split of ``num_examples`` rows.

    Args:
      sample_weight: None (every row weighs 1), or real weights of shape (n,),
        each finite and >= 0, not all 0.
      num_examples: n.
      split: the split's name, for the messages.

    Returns:
      None, or the weights as a floating array of shape (n,) (a `jax.Array`
      stays on its device; NumPy becomes float64, or float32 when it was).

    Raises:
      TypeError: non-numeric weights.
      ValueError: a wrong shape, NaN, infinite or negative weights, or all 0.

    Example:
      >>> from jaxsoft.weights import check_sample_weight
      >>> check_sample_weight([1, 2, 0], 3).tolist()
      [1.0, 2.0, 0.0]
      >>> check_sample_weight([1.0, -1.0], 2)
      Traceback (most recent call last):
      ...
      ValueError: sample_weight of the train split has a negative weight (-1.0 ...
    """
    if sample_weight is None:
        return None
    name = f"sample_weight of the {split} split"
    on_device = isinstance(sample_weight, jax.Array)
    w = sample_weight if on_device else np.asarray(sample_weight)
    if w.dtype == np.bool_ or not (
        jnp.issubdtype(w.dtype, jnp.floating) or jnp.issubdtype(w.dtype, jnp.integer)
    ):
        raise TypeError(f"{name} must be real numbers, got dtype {w.dtype}.")
    if w.shape != (num_examples,):
        raise ValueError(
            f"{name} must have shape ({num_examples},), one weight per example, "
            f"got shape {w.shape}."
        )
    xp = jnp if on_device else np
    if not jnp.issubdtype(w.dtype, jnp.floating):
        w = w.astype(xp.float32 if on_device else np.float64)
    bad, low, low_at, total = jax.device_get(
        (
            xp.sum(~xp.isfinite(w)),
            xp.min(w),
            xp.argmin(w),
            xp.sum(w, dtype=w.dtype),
        )
    )
    if bad:
        first = int(jax.device_get(xp.argmax(~xp.isfinite(w))))
        raise ValueError(
            f"{name} has {int(bad)} NaN or infinite weight(s), the first at index "
            f"{first}; weights must be finite numbers >= 0."
        )
    if low < 0:
        raise ValueError(
            f"{name} has a negative weight ({float(low)} at index {int(low_at)}); "
            "weights must be >= 0."
        )
    if not total > 0:
        raise ValueError(f"{name} is 0 for every example: nothing would be trained.")
    return w


def class_weight(
    y: Any, weights: str | Mapping[int, float] | None, num_classes: int
) -> np.ndarray:
    """Per-class weights (q,), as scikit-learn's ``compute_class_weight``.

    Args:
      y: integer labels (n,) in [0, q).
      weights: None (all 1), ``"balanced"`` (``n / (q_present * n_c)`` for
        each class present, as scikit-learn computes it), or a mapping
        {class index: weight} (classes not named weigh 1).
      num_classes: q.

    Returns:
      float64 array of shape (q,).

    Example:
      >>> from jaxsoft.weights import class_weight
      >>> class_weight([0, 0, 0, 1], "balanced", 2).tolist()
      [0.6666666666666666, 2.0]
    """
    y = np.asarray(y)
    out = np.ones(num_classes, np.float64)
    if weights is None:
        return out
    if isinstance(weights, str):
        if weights != "balanced":
            raise ValueError(
                f'class_weight must be "balanced", a dict or None, got {weights!r}.'
            )
        counts = np.bincount(y, minlength=num_classes).astype(np.float64)
        present = counts > 0
        out[present] = len(y) / (present.sum() * counts[present])
        return out
    if not isinstance(weights, Mapping):
        raise TypeError(
            "class_weight must be 'balanced', a dict {class: weight} or None, got "
            f"{type(weights).__name__}."
        )
    for label, value in weights.items():
        if not 0 <= int(label) < num_classes:
            raise ValueError(
                f"class_weight names class {label!r}, outside [0, {num_classes})."
            )
        if not np.isfinite(value) or value < 0:
            raise ValueError(
                f"class_weight of class {label!r} must be a finite number >= 0, "
                f"got {value!r}."
            )
        out[int(label)] = float(value)
    return out


def sample_weight_of_classes(
    y: Any,
    weights: str | Mapping[int, float] | None,
    num_classes: int,
    sample_weight: Any = None,
) -> np.ndarray:
    """Each example's class weight times its sample weight, (n,) float64.

    Example:
      >>> from jaxsoft.weights import sample_weight_of_classes
      >>> sample_weight_of_classes([0, 0, 0, 1], "balanced", 2, [1, 1, 2, 1]).round(3)
      array([0.667, 0.667, 1.333, 2.   ])
    """
    y = np.asarray(y)
    per_class = class_weight(y, weights, num_classes)[y]
    if sample_weight is None:
        return per_class
    checked = check_sample_weight(sample_weight, len(y))
    return per_class * np.asarray(checked, np.float64)
