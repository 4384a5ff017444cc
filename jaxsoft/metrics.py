"""Classification metrics computed from logits: accuracy, top-k, confusion.

Each metric is written for one example and batched with `jax.vmap`; the
batched results are means (or counts) over the leading axes.

Integer labels outside [0, q) (negative ones too) raise a ValueError when they
are concrete. Under ``jit``, where XLA cannot raise, they make `accuracy`,
`top_k_accuracy` and `expected_calibration_error` NaN, and `confusion_matrix`
leaves such examples out (its counts then sum to fewer than n): never a
silent miss or a count in the wrong cell.
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxsoft import losses, validation

__all__ = [
    "accuracy",
    "calibration_gaps",
    "confusion_matrix",
    "expected_calibration_error",
    "top_k_accuracy",
]


def _prepare(
    logits: ArrayLike,
    labels: ArrayLike,
    where: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array | None]:
    """-> logits (n, q), class indices (n,), whether each index is valid,
    which examples count (n,) bool, and each example's weight (n,) or None.

    An example counts when ``where`` includes it (all by default) and its
    weight is positive: a weight of 0 is a dropped row. The weights are
    floating (at least float32); None when ``sample_weight`` is None (every
    example counts once, and counts stay integers).

    Concrete integer labels outside [0, q) raise here (unless ``where`` or a
    zero weight excludes them); traced ones are flagged invalid for the
    caller to turn into NaN.
    """
    logits = validation.as_array("logits", logits)
    validation.check_floating("logits", logits)
    validation.check_min_rank("logits", logits, 1)
    q, batch_shape = logits.shape[-1], logits.shape[:-1]
    included = None
    if where is not None:
        included = validation.as_array("where", where)
        if included.shape != batch_shape:
            raise ValueError(
                f"where must be a mask over examples of shape {batch_shape}, "
                f"got shape {included.shape}."
            )
        included = included.astype(bool)
    w = None
    if sample_weight is not None:
        w = _checked_weights(sample_weight, batch_shape)
        included = w > 0 if included is None else included & (w > 0)
    label_array = validation.as_array("labels", labels)
    if validation.is_class_index_labels(logits.shape, label_array):
        concrete_mask = (
            None if included is None else validation.concrete_value(included)
        )
        validation.check_class_indices(labels, q, concrete_mask)
        indices = label_array
    else:  # probability vectors: their argmax is the label, always valid
        indices = jnp.argmax(label_array, axis=-1)
    indices = indices.reshape(-1)
    valid = (indices >= 0) & (indices < q)
    counted = (
        jnp.ones(indices.shape, bool) if included is None else included.reshape(-1)
    )
    w = None if w is None else w.reshape(-1)
    return logits.reshape(-1, q), indices, valid | ~counted, counted, w


def _checked_weights(
    sample_weight: ArrayLike, batch_shape: tuple[int, ...]
) -> jax.Array:
    """``sample_weight`` as a floating array (at least float32) of the
    examples' shape; concrete weights must be finite and >= 0."""
    w = validation.as_array("sample_weight", sample_weight)
    if w.shape != batch_shape:
        raise ValueError(
            f"sample_weight must hold one weight per example, of shape "
            f"{batch_shape}, got shape {w.shape}."
        )
    w = w.astype(jnp.promote_types(w.dtype, jnp.float32))
    values = validation.concrete_value(w)
    if values is not None and not (np.all(np.isfinite(values)) and np.all(values >= 0)):
        raise ValueError("sample_weight must be finite and >= 0.")
    return w


def _total_weight(counted: jax.Array, w: jax.Array | None) -> jax.Array:
    """How many examples count (an integer), or the sum of their weights."""
    return jnp.sum(counted) if w is None else jnp.sum(jnp.where(counted, w, 0.0))


def _masked_mean(
    values: jax.Array, valid: jax.Array, counted: jax.Array, w: jax.Array | None
) -> jax.Array:
    """The mean of ``values`` over counted examples, each weighted by ``w``
    (None: once); NaN if one is invalid."""
    values = _nan_where_invalid(values, valid)
    if w is not None:
        values = w * values.astype(w.dtype)
    return jnp.sum(jnp.where(counted, values, 0.0)) / _total_weight(counted, w)


def _nan_where_invalid(values: jax.Array, valid: jax.Array) -> jax.Array:
    return jnp.where(valid, values, jnp.nan)


def _top_k_hit_one(o: jax.Array, label: jax.Array, k: int) -> jax.Array:
    """1.0 if ``label`` is among the k largest logits of ``o`` (shape (q,)).

    Ties count for the label: it is a hit when fewer than k classes score
    strictly higher than it, i.e. when ``o[label]`` is at least the k-th
    largest logit.
    """
    return (jnp.sum(o > jnp.take(o, label, mode="clip")) < k).astype(jnp.float32)


def accuracy(
    logits: ArrayLike,
    labels: ArrayLike,
    where: ArrayLike | None = None,
    *,
    sample_weight: ArrayLike | None = None,
) -> jax.Array:
    """The fraction of examples whose ``argmax_j o_j`` equals the label.

    Args:
      logits: o, of shape (..., q).
      labels: integer class indices of shape (...), or probability vectors of
        shape (..., q) (their argmax is the label).
      where: optional bool mask of shape (...): the examples that count (the
        mean is over those; e.g. padding masked out).
      sample_weight: optional weights of shape (...), each finite and >= 0:
        every example counts ``w_i`` times, as in scikit-learn (integer
        weights equal repeated rows, a weight of 0 a dropped row).

    Returns:
      A float32 scalar in [0, 1], ``sum_i w_i hit_i / sum_i w_i`` (NaN
      under ``jit`` if a label is out of range; concrete ones raise a
      ValueError).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> o = jnp.array([[3.2, 1.3, 0.2], [0.1, 0.2, 0.9]])
      >>> js.accuracy(o, jnp.array([0, 1]))
      Array(0.5, dtype=float32)
      >>> js.accuracy(o, jnp.array([0, 1]), sample_weight=jnp.array([3.0, 1.0]))
      Array(0.75, dtype=float32)
    """
    logits, indices, valid, counted, w = _prepare(logits, labels, where, sample_weight)
    hits = jax.vmap(lambda o, y: (jnp.argmax(o) == y).astype(jnp.float32))(
        logits, indices
    )
    return _masked_mean(hits, valid, counted, w)


def top_k_accuracy(
    logits: ArrayLike,
    labels: ArrayLike,
    k: int = 5,
    where: ArrayLike | None = None,
    *,
    sample_weight: ArrayLike | None = None,
) -> jax.Array:
    """The fraction of examples whose label is among the k highest logits.

    Args:
      logits: o, of shape (..., q).
      labels: integer class indices of shape (...) or probability vectors of
        shape (..., q).
      k: how many top classes count as a hit (1 <= k <= q; an int or a NumPy
        integer).
      where: optional bool mask of shape (...): the examples that count.
      sample_weight: optional weights of shape (...), each finite and >= 0:
        every example counts ``w_i`` times, as in scikit-learn (integer
        weights equal repeated rows, a weight of 0 a dropped row).

    Returns:
      A float32 scalar in [0, 1] (a weighted mean with ``sample_weight``).
      Ties count for the label: an example is a hit when fewer than k
      classes have a strictly larger logit than its label's. So ``k=1`` is
      `accuracy` except on ties (where argmax picks the first of the tied
      classes). NaN under ``jit`` if a label is out of
      range (concrete ones raise a ValueError).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> o = jnp.array([[3.2, 1.3, 0.2], [0.1, 0.2, 0.9]])
      >>> js.top_k_accuracy(o, jnp.array([1, 0]), k=2)
      Array(0.5, dtype=float32)
      >>> js.top_k_accuracy(jnp.array([[1.0, 1.0, 0.0]]), jnp.array([1]), k=1)
      Array(1., dtype=float32)
    """
    logits, indices, valid, counted, w = _prepare(logits, labels, where, sample_weight)
    q = logits.shape[-1]
    try:
        k_int = operator.index(k)  # int and np.integer, not float
    except TypeError:
        k_int = 0
    if isinstance(k, (bool, np.bool_)) or not 1 <= k_int <= q:
        raise ValueError(f"k must be an int in [1, {q}], got {k!r}.")
    hits = jax.vmap(lambda o, y: _top_k_hit_one(o, y, k_int))(logits, indices)
    return _masked_mean(hits, valid, counted, w)


def confusion_matrix(
    logits: ArrayLike,
    labels: ArrayLike,
    where: ArrayLike | None = None,
    *,
    sample_weight: ArrayLike | None = None,
) -> jax.Array:
    """Counts of (true class, predicted class) pairs.

    Args:
      logits: o, of shape (..., q).
      labels: integer class indices of shape (...) or probability vectors of
        shape (..., q).
      where: optional bool mask of shape (...): the examples that count.
      sample_weight: optional weights of shape (...), each finite and >= 0:
        every example counts ``w_i`` times, as in scikit-learn (integer
        weights equal repeated rows, a weight of 0 a dropped row).

    Returns:
      An int32 array C of shape (q, q): ``C[i, j]`` is the number of examples
      of true class i predicted as j. Rows sum to the class counts; the
      diagonal holds the correct predictions. With ``sample_weight``, C holds
      sums of weights in the weights' floating dtype (at least float32), as
      scikit-learn's ``confusion_matrix(..., sample_weight=w)`` does. Under
      ``jit``, examples with an out-of-range label are left out (concrete
      ones raise).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> o = jnp.array([[3.0, 1.0], [0.0, 2.0], [5.0, 1.0]])
      >>> js.confusion_matrix(o, jnp.array([0, 0, 1]))
      Array([[1, 1],
             [1, 0]], dtype=int32)
    """
    logits, indices, valid, counted, w = _prepare(logits, labels, where, sample_weight)
    q = logits.shape[-1]
    predicted = jnp.argmax(logits, axis=-1)
    # Out of bounds (q * q) for an invalid label or an example not counted:
    # dropped, never wrapped around into another cell as a negative index
    # would be.
    flat_cell = jnp.where(valid & counted, indices * q + predicted, q * q)
    if w is None:
        counts = jnp.zeros((q * q,), jnp.int32).at[flat_cell].add(1, mode="drop")
    else:
        counts = jnp.zeros((q * q,), w.dtype).at[flat_cell].add(w, mode="drop")
    return counts.reshape(q, q)


def calibration_gaps(
    logits: ArrayLike,
    labels: ArrayLike,
    num_bins: int = 15,
    where: ArrayLike | None = None,
    *,
    sample_weight: ArrayLike | None = None,
) -> jax.Array:
    """Per confidence bin, the sum over its examples of (correct - confidence).

    The building block of `expected_calibration_error` that adds up over
    batches: ``ECE = sum_b |gaps_b| / n`` for the gaps summed over every
    batch of n examples in all (with ``sample_weight``, each example's gap is
    multiplied by its weight and n is the sum of the weights).

    Args:
      logits: o, of shape (..., q).
      labels: integer class indices of shape (...) or probability vectors of
        shape (..., q).
      num_bins: equal-width confidence bins over [0, 1].
      where: optional bool mask of shape (...): the examples that count.
      sample_weight: optional weights of shape (...), each finite and >= 0:
        every example counts ``w_i`` times, as in scikit-learn (integer
        weights equal repeated rows, a weight of 0 a dropped row).

    Returns:
      A float32 array of shape (num_bins,) (NaN under ``jit`` if a counted
      label is out of range; concrete ones raise a ValueError).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> o = jnp.log(jnp.array([[0.9, 0.1], [0.9, 0.1]]))
      >>> js.metrics.calibration_gaps(o, jnp.array([0, 1]), num_bins=2)
      Array([ 0. , -0.8], dtype=float32)
    """
    logits, indices, valid, counted, w = _prepare(logits, labels, where, sample_weight)
    num_bins = validation.positive_int("num_bins", num_bins)
    probs = losses.softmax(logits.astype(validation.compute_dtype(logits.dtype)))
    confidence = jnp.max(probs, axis=-1)
    correct = (jnp.argmax(logits, axis=-1) == indices).astype(jnp.float32)
    gap = _nan_where_invalid(correct, valid) - confidence
    gap = jnp.where(counted, gap if w is None else w * gap, 0.0)
    bins = jnp.clip((confidence * num_bins).astype(jnp.int32), 0, num_bins - 1)
    return jax.ops.segment_sum(gap, bins, num_bins)


def expected_calibration_error(
    logits: ArrayLike,
    labels: ArrayLike,
    num_bins: int = 15,
    where: ArrayLike | None = None,
    *,
    sample_weight: ArrayLike | None = None,
) -> jax.Array:
    """How far confidence is from accuracy: ``sum_b (n_b / n) |acc_b - conf_b|``.

    Each example's confidence is its largest softmax probability. Examples are
    grouped into ``num_bins`` equal-width confidence bins over [0, 1]; within
    bin b, acc_b is the fraction predicted correctly and conf_b the mean
    confidence. A calibrated model (confidence 0.8 is right 80% of the time)
    scores 0. Built on `calibration_gaps`, which adds up over batches.

    Args:
      logits: o, of shape (..., q).
      labels: integer class indices of shape (...) or probability vectors of
        shape (..., q).
      num_bins: the number of confidence bins (an int or a NumPy integer).
      where: optional bool mask of shape (...): the examples that count.
      sample_weight: optional weights of shape (...), each finite and >= 0:
        every example counts ``w_i`` times, as in scikit-learn (integer
        weights equal repeated rows, a weight of 0 a dropped row).

    Returns:
      A float32 scalar in [0, 1] (NaN under ``jit`` if a label is out of
      range; concrete ones raise a ValueError).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> o = jnp.log(jnp.array([[0.9, 0.1], [0.9, 0.1]]))  # 90% confident
      >>> js.expected_calibration_error(o, jnp.array([0, 1]))  # right 50%
      Array(0.4, dtype=float32)
    """
    gaps = calibration_gaps(
        logits, labels, num_bins, where, sample_weight=sample_weight
    )
    _, _, _, counted, w = _prepare(logits, labels, where, sample_weight)
    return jnp.sum(jnp.abs(gaps)) / _total_weight(counted, w)
