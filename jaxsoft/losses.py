"""Softmax, one-hot encoding and the cross-entropy loss, computed stably.

The math follows the lecture (losses in nats, natural log):

    softmax(o)_i   = exp(o_i) / sum_j exp(o_j)
    l(y, o)        = -sum_j y_j log softmax(o)_j = logsumexp(o) - <y, o>
    dl/do          = softmax(o) - y

The loss is always computed from the logits through log-sum-exp, never as
``log(softmax(o))``: the probabilities can underflow to 0 and their log to
-inf, while ``logsumexp(o) - o_y`` stays finite for any finite logits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxsoft import _validation

__all__ = [
    "cross_entropy",
    "cross_entropy_grad",
    "l2_penalty",
    "log_softmax",
    "logsumexp",
    "one_hot",
    "softmax",
]


def _row_max(o: jax.Array, axis: int) -> jax.Array:
    """max(o) along ``axis`` (kept, size 1), the shift that keeps exp() <= 1.

    A constant for differentiation: the functions built on it do not depend
    on it. An all--inf row gets 0, not -inf, so that (-inf) - (-inf) never
    forms a nan.
    """
    m = jax.lax.stop_gradient(jnp.max(o, axis=axis, keepdims=True))
    return jnp.where(jnp.isfinite(m), m, 0.0)


def _shift_by_max(o: jax.Array, axis: int) -> jax.Array:
    """``o - max(o)`` along ``axis``: every entry <= 0, the largest exactly 0."""
    return o - _row_max(o, axis)


def logsumexp(o: ArrayLike, axis: int = -1) -> jax.Array:
    """Stable ``log(sum(exp(o)))`` along ``axis``.

    Shifts by the largest entry m first: ``m + log(sum(exp(o - m)))``, so no
    term can overflow. Entries equal to -inf contribute exp(-inf) = 0; the
    result is -inf only when every entry is -inf.

    Args:
      o: logits of shape (..., q).
      axis: the class axis.

    Returns:
      An array of shape (...) (``axis`` removed).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> float(js.logsumexp(jnp.array([1000.0, 1000.0])))  # naive: inf
      1000.693...
    """
    o = jnp.asarray(o)
    _validation.check_floating("logits", o)
    m = _row_max(o, axis)
    sum_exp = jnp.sum(jnp.exp(o - m), axis=axis)
    return jnp.log(sum_exp) + jnp.squeeze(m, axis=axis)


def softmax(o: ArrayLike, axis: int = -1) -> jax.Array:
    """The softmax ``exp(o_i) / sum_j exp(o_j)``, computed stably.

    Subtracting the row maximum leaves the result unchanged (softmax is
    invariant to adding a constant) and keeps every exponent <= 0, so it is
    exact for logits of any finite size. Entries equal to -inf (masked classes)
    get probability exactly 0, provided at least one entry is finite.

    Args:
      o: logits of shape (..., q).
      axis: the class axis.

    Returns:
      Probabilities of the same shape, in [0, 1] and summing to 1 along
      ``axis``.

    Example (the lecture's Dog, Cat, Bear, Tiger):
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> js.softmax(jnp.array([3.2, 1.3, 0.2, 0.8])).round(2)
      Array([0.78, 0.12, 0.04, 0.07], dtype=float32)
    """
    o = jnp.asarray(o)
    _validation.check_floating("logits", o)
    unnormalized = jnp.exp(_shift_by_max(o, axis))
    return unnormalized / jnp.sum(unnormalized, axis=axis, keepdims=True)


def log_softmax(o: ArrayLike, axis: int = -1) -> jax.Array:
    """``log softmax(o) = o - logsumexp(o)``, computed without taking a log of 0.

    Args:
      o: logits of shape (..., q).
      axis: the class axis.

    Returns:
      Log-probabilities of the same shape (<= 0; -inf exactly where ``o`` is
      -inf).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> js.log_softmax(jnp.array([0.0, 1e4]))  # log(softmax) would give -inf
      Array([-10000.,      0.], dtype=float32)
    """
    o = jnp.asarray(o)
    _validation.check_floating("logits", o)
    # (o - m) - log(sum(exp(o - m))): both terms small, so no large number is
    # subtracted from another (o - logsumexp(o) would lose digits at |o| ~ 1e4).
    shifted = _shift_by_max(o, axis)
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


def one_hot(
    labels: ArrayLike, num_classes: int, dtype: jnp.dtype = jnp.float32
) -> jax.Array:
    """One-hot encoding: ``y_j = 1`` if ``j`` is the class, else 0.

    Examples are rows and classes columns, the transpose of the lecture's
    drawing (which puts classes in rows).

    Args:
      labels: integer class indices of shape (...), each in [0, num_classes).
      num_classes: q, the number of classes.
      dtype: dtype of the result.

    Returns:
      An array of shape (..., q). An index outside [0, q) gives a row of zeros
      (it cannot raise under ``jit``; host entry points validate labels first).

    Example (the lecture's Cat, Dog, Cat, Frog with classes Cat=0, Dog=1,
    Frog=2):
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> js.one_hot(jnp.array([0, 1, 0, 2]), 3, dtype=jnp.int32)
      Array([[1, 0, 0],
             [0, 1, 0],
             [1, 0, 0],
             [0, 0, 1]], dtype=int32)
    """
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(
            f"one_hot expects integer class indices, got dtype {labels.dtype}."
        )
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}.")
    return (labels[..., None] == jnp.arange(num_classes)).astype(dtype)


def _as_targets(logits: jax.Array, labels: ArrayLike) -> jax.Array:
    """Labels of either layout -> probability vectors of shape (..., q)."""
    labels = jnp.asarray(labels)
    if _validation.is_class_index_labels(logits.shape, labels):
        return one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return labels.astype(logits.dtype)


def _prepare(logits: ArrayLike, labels: ArrayLike) -> tuple[jax.Array, jax.Array]:
    logits = jnp.asarray(logits)
    _validation.check_floating("logits", logits)
    _validation.check_min_rank("logits", logits, 1)
    logits = logits.astype(_validation.compute_dtype(logits.dtype))
    return logits, _as_targets(logits, labels)


def _batched(per_example, logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Applies a function of one example ((q,), (q,)) over the leading axes."""
    batch_shape, q = logits.shape[:-1], logits.shape[-1]
    flat = jax.vmap(per_example)(logits.reshape(-1, q), targets.reshape(-1, q))
    return flat.reshape(batch_shape + flat.shape[1:])


def _cross_entropy_one(o: jax.Array, y: jax.Array) -> jax.Array:
    """l(y, o) = logsumexp(o) - <y, o> for one example: o, y of shape (q,).

    Computed with the logits shifted by their max m, which cancels exactly:
    logsumexp(o) - <y, o> = sum(y) log(sum(exp(o - m))) - <y, o - m>. Both
    terms stay small, so at |o| ~ 1e4 no digits are lost to subtracting two
    nearly equal large numbers.
    """
    shifted = _shift_by_max(o, axis=-1)
    log_normalizer = jnp.log(jnp.sum(jnp.exp(shifted)))
    # Where y_j = 0 the term y_j * o_j is 0 even if o_j = -inf (a masked class);
    # select o_j away there so that 0 * -inf never forms a nan.
    shifted_where_labelled = jnp.where(y != 0, shifted, 0.0)
    return jnp.sum(y) * log_normalizer - jnp.dot(y, shifted_where_labelled)


def cross_entropy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    """Per-example cross-entropy in nats: ``logsumexp(o) - <y, o>``.

    This is ``-sum_j y_j log softmax(o)_j``, the negative log-likelihood of the
    label under the model, computed from the logits so that it stays finite
    for any finite logits (and accurate: both terms are evaluated on the
    logits minus their maximum, which cancels exactly). Low-precision logits
    (bfloat16, float16) are computed in float32.

    Note on units: the lecture's worked example prints -log(0.78) = 0.108,
    which is the base-10 logarithm. In nats (natural log, what training
    minimises and what every library reports) it is 0.248; divide by ln(10)
    to get the lecture's number.

    Args:
      logits: o, of shape (..., q).
      labels: either integer class indices of shape (...), or probability
        vectors (one-hot or soft) of shape (..., q). Float labels of shape
        (...) are a TypeError.

    Returns:
      The loss of each example, shape (...), dtype at least float32.

    Example (the lecture's logits for Dog, Cat, Bear, Tiger; the true class is
    Dog, index 0):
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> o = jnp.array([3.2, 1.3, 0.2, 0.8])
      >>> js.cross_entropy(o, jnp.array(0))  # -ln softmax(o)[0] = -ln 0.775
      Array(0.255, dtype=float32)

      The lecture rounds y_hat_Dog to 0.78 first: -ln 0.78 = 0.248 nats, and
      prints -log10 0.78 = 0.108.
      >>> y_hat = jnp.array([0.78, 0.12, 0.04, 0.06])  # sums to 1
      >>> js.cross_entropy(jnp.log(y_hat), jnp.array([1.0, 0.0, 0.0, 0.0]))
      Array(0.248, dtype=float32)
    """
    logits, targets = _prepare(logits, labels)
    return _batched(_cross_entropy_one, logits, targets)


def cross_entropy_grad(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    """The closed-form gradient of `cross_entropy` w.r.t. the logits.

    ``dl/do_j = softmax(o)_j - y_j``: predicted minus observed probability.

    Args:
      logits: o, of shape (..., q).
      labels: integer class indices of shape (...) or probability vectors of
        shape (..., q).

    Returns:
      An array of shape (..., q), dtype at least float32.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> js.cross_entropy_grad(jnp.array([0.0, 0.0]), jnp.array(1))
      Array([ 0.5, -0.5], dtype=float32)
    """
    logits, targets = _prepare(logits, labels)
    return _batched(lambda o, y: softmax(o) - y, logits, targets)


def l2_penalty(weights: ArrayLike) -> jax.Array:
    """``||W||^2 / 2``, the squared Frobenius norm halved.

    Args:
      weights: W, any shape.

    Returns:
      A scalar, at least float32. Its gradient is W itself.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> js.l2_penalty(jnp.array([[3.0, 4.0]]))
      Array(12.5, dtype=float32)
    """
    weights = jnp.asarray(weights)
    weights = weights.astype(_validation.compute_dtype(weights.dtype))
    return 0.5 * jnp.sum(jnp.square(weights))
