"""Classification metrics computed from logits: accuracy, top-k, confusion.

Each metric is written for one example and batched with `jax.vmap`; the
batched results are means (or counts) over the leading axes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxsoft import _validation, losses

__all__ = [
    "accuracy",
    "confusion_matrix",
    "expected_calibration_error",
    "top_k_accuracy",
]


def _class_indices(logits: jax.Array, labels: ArrayLike) -> jax.Array:
    """Labels of either layout -> integer class indices of shape (...)."""
    labels = jnp.asarray(labels)
    if _validation.is_class_index_labels(logits.shape, labels):
        return labels
    return jnp.argmax(labels, axis=-1)


def _prepare(logits: ArrayLike, labels: ArrayLike) -> tuple[jax.Array, jax.Array]:
    logits = jnp.asarray(logits)
    _validation.check_floating("logits", logits)
    _validation.check_min_rank("logits", logits, 1)
    indices = _class_indices(logits, labels)
    q = logits.shape[-1]
    return logits.reshape(-1, q), indices.reshape(-1)


def _top_k_hit_one(o: jax.Array, label: jax.Array, k: int) -> jax.Array:
    """1.0 if ``label`` is among the k largest logits of ``o`` (shape (q,)).

    Ties count against the label: it is a hit when fewer than k classes score
    strictly higher than it.
    """
    return (jnp.sum(o > o[label]) < k).astype(jnp.float32)


def accuracy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    """The fraction of examples whose ``argmax_j o_j`` equals the label.

    Args:
      logits: o, of shape (..., q).
      labels: integer class indices of shape (...), or probability vectors of
        shape (..., q) (their argmax is the label).

    Returns:
      A float32 scalar in [0, 1].

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> o = jnp.array([[3.2, 1.3, 0.2], [0.1, 0.2, 0.9]])
      >>> js.accuracy(o, jnp.array([0, 1]))
      Array(0.5, dtype=float32)
    """
    logits, indices = _prepare(logits, labels)
    hits = jax.vmap(lambda o, y: (jnp.argmax(o) == y).astype(jnp.float32))(
        logits, indices
    )
    return jnp.mean(hits)


def top_k_accuracy(logits: ArrayLike, labels: ArrayLike, k: int = 5) -> jax.Array:
    """The fraction of examples whose label is among the k highest logits.

    Args:
      logits: o, of shape (..., q).
      labels: integer class indices of shape (...) or probability vectors of
        shape (..., q).
      k: how many top classes count as a hit (1 <= k <= q).

    Returns:
      A float32 scalar in [0, 1]; ``k=1`` is `accuracy` up to ties.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> o = jnp.array([[3.2, 1.3, 0.2], [0.1, 0.2, 0.9]])
      >>> js.top_k_accuracy(o, jnp.array([1, 0]), k=2)
      Array(0.5, dtype=float32)
    """
    logits, indices = _prepare(logits, labels)
    if not isinstance(k, int) or not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"k must be an int in [1, {logits.shape[-1]}], got {k!r}.")
    hits = jax.vmap(lambda o, y: _top_k_hit_one(o, y, k))(logits, indices)
    return jnp.mean(hits)


def confusion_matrix(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    """Counts of (true class, predicted class) pairs.

    Args:
      logits: o, of shape (..., q).
      labels: integer class indices of shape (...) or probability vectors of
        shape (..., q).

    Returns:
      An int32 array C of shape (q, q): ``C[i, j]`` is the number of examples
      of true class i predicted as j. Rows sum to the class counts; the
      diagonal holds the correct predictions.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> o = jnp.array([[3.0, 1.0], [0.0, 2.0], [5.0, 1.0]])
      >>> js.confusion_matrix(o, jnp.array([0, 0, 1]))
      Array([[1, 1],
             [1, 0]], dtype=int32)
    """
    logits, indices = _prepare(logits, labels)
    q = logits.shape[-1]
    predicted = jnp.argmax(logits, axis=-1)
    flat_cell = indices * q + predicted
    counts = jnp.zeros((q * q,), jnp.int32).at[flat_cell].add(1, mode="drop")
    return counts.reshape(q, q)


def expected_calibration_error(
    logits: ArrayLike, labels: ArrayLike, num_bins: int = 15
) -> jax.Array:
    """How far confidence is from accuracy: ``sum_b (n_b / n) |acc_b - conf_b|``.

    Each example's confidence is its largest softmax probability. Examples are
    grouped into ``num_bins`` equal-width confidence bins over [0, 1]; within
    bin b, acc_b is the fraction predicted correctly and conf_b the mean
    confidence. A calibrated model (confidence 0.8 is right 80% of the time)
    scores 0.

    Args:
      logits: o, of shape (..., q).
      labels: integer class indices of shape (...) or probability vectors of
        shape (..., q).
      num_bins: the number of confidence bins.

    Returns:
      A float32 scalar in [0, 1].

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> o = jnp.log(jnp.array([[0.9, 0.1], [0.9, 0.1]]))  # 90% confident
      >>> js.expected_calibration_error(o, jnp.array([0, 1]))  # right 50%
      Array(0.4, dtype=float32)
    """
    logits, indices = _prepare(logits, labels)
    if not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive int, got {num_bins!r}.")
    probs = losses.softmax(logits.astype(_validation.compute_dtype(logits.dtype)))
    confidence = jnp.max(probs, axis=-1)
    correct = (jnp.argmax(logits, axis=-1) == indices).astype(jnp.float32)
    bins = jnp.clip((confidence * num_bins).astype(jnp.int32), 0, num_bins - 1)
    gap_per_bin = jax.ops.segment_sum(correct - confidence, bins, num_bins)
    return jnp.sum(jnp.abs(gap_per_bin)) / confidence.shape[0]
