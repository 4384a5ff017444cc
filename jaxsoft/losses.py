"""Softmax, one-hot encoding and the cross-entropy loss, computed stably.

The math follows the lecture (losses in nats, natural log):

    softmax(o)_i   = exp(o_i) / sum_j exp(o_j)
    l(y, o)        = -sum_j y_j log softmax(o)_j = logsumexp(o) - <y, o>
    dl/do          = softmax(o) - y

The loss is always computed from the logits through log-sum-exp, never as
``log(softmax(o))``: the probabilities can underflow to 0 and their log to
-inf, while ``logsumexp(o) - o_y`` stays finite for any finite logits.

`cross_entropy` takes optax's ``axis`` and ``where`` arguments, and both
label layouts (class indices or probability vectors), so it stands in for
`optax.softmax_cross_entropy` and
`optax.softmax_cross_entropy_with_integer_labels`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxsoft import validation
from jaxsoft._class_axes import broadcast_where, check_arguments

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
    validation.check_floating("logits", o)
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
    validation.check_floating("logits", o)
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
    validation.check_floating("logits", o)
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
      num_classes: q, the number of classes (an int or a NumPy integer).
      dtype: dtype of the result.

    Returns:
      An array of shape (..., q). An index outside [0, q) gives a row of zeros,
      a negative one too (-1 is not the last class), as in `jax.nn.one_hot`;
      ``one_hot`` does not check its input. `cross_entropy` and the metrics
      do: they raise on such labels, or give NaN under ``jit``.

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
    labels = validation.as_array("labels", labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(
            f"one_hot expects integer class indices, got dtype {labels.dtype}."
        )
    num_classes = validation.positive_int("num_classes", num_classes)
    return (labels[..., None] == jnp.arange(num_classes)).astype(dtype)


# Class axes -------------------------------------------------------------------
#
# One example ------------------------------------------------------------------


def _normalizer(o: jax.Array, w: jax.Array | None):
    """For one example o of shape (q,): ``(kept, m, o - m, log sum_kept exp(o - m))``.

    A class is kept when ``where`` includes it and its logit is not -inf. m is
    the largest kept logit (0 if none), a constant for differentiation: the
    functions built on it do not depend on it. ``o - m`` is 0 where not kept,
    so that no -inf enters a product (0 * -inf = nan, in values or in
    gradients); the log-normalizer is 0 for a row with nothing kept.
    """
    kept = o != -jnp.inf
    if w is not None:
        kept = kept & w
    m = jax.lax.stop_gradient(jnp.max(jnp.where(kept, o, -jnp.inf), initial=-jnp.inf))
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    shifted = jnp.where(kept, o - m, 0.0)
    sum_exp = jnp.sum(jnp.where(kept, jnp.exp(shifted), 0.0))
    log_z = jnp.log(jnp.where(jnp.any(kept), sum_exp, 1.0))
    return kept, m, shifted, log_z


def _impossible_mass(o: jax.Array, y: jax.Array, w: jax.Array | None) -> jax.Array:
    """True when y puts weight on an included class of logit -inf (loss +inf)."""
    on_masked = (o == -jnp.inf) & (y != 0)
    if w is not None:
        on_masked = on_masked & w
    return jnp.any(on_masked)


def _cross_entropy_probs_one(o, y, w):
    """``sum_j y_j (log Z - (o_j - m)) = -sum_j y_j log softmax(o)_j``, one example.

    Both terms stay small (m, the largest logit, cancels exactly), so at
    |o| ~ 1e4 no digits are lost to subtracting two nearly equal large
    numbers. Classes that are not kept (masked by ``where``, or -inf) drop
    out of the sum, which is what makes the derivative w.r.t. y_j exactly
    ``-log softmax(o)_j`` on kept classes and 0 on the others.
    """
    kept, _, shifted, log_z = _normalizer(o, w)
    loss = jnp.sum(jnp.where(kept, y * (log_z - shifted), 0.0))
    return jnp.where(_impossible_mass(o, y, w), jnp.inf, loss)


def _index_loss_parts(o, label, w):
    q = o.shape[0]
    valid = (label >= 0) & (label < q)
    o_label = jnp.take(o, label, mode="clip")  # an invalid label: NaN below
    return valid, o_label, o_label == -jnp.inf


def _row_rules(value, valid, w):
    """NaN for an invalid label; 0 for an example that ``where`` masks out."""
    value = jnp.where(valid, value, jnp.nan)
    if w is not None:
        value = jnp.where(jnp.any(w), value, 0.0)
    return value


def _cross_entropy_index_one(o, label, w):
    """``log Z - (o_label - m) = -log softmax(o)_label`` for one example."""
    if o.shape[0] == 0:  # no classes: every label is out of range
        return _row_rules(jnp.zeros((), o.dtype), False, w)
    _, m, _, log_z = _normalizer(o, w)
    valid, o_label, impossible = _index_loss_parts(o, label, w)
    # As in optax, the label's logit counts even where `where` excludes it.
    loss = log_z - jnp.where(impossible, 0.0, o_label - m)
    return _row_rules(jnp.where(impossible, jnp.inf, loss), valid, w)


def _softmax_kept(o, w):
    kept, _, shifted, log_z = _normalizer(o, w)
    return kept, jnp.where(kept, jnp.exp(shifted - log_z), 0.0)


def _grad_probs_one(o, y, w):
    """d/do of `_cross_entropy_probs_one`: ``sum(y) softmax(o) - y`` on kept classes."""
    kept, p = _softmax_kept(o, w)
    total = jnp.sum(jnp.where(kept, y, 0.0))
    grad = jnp.where(kept, total * p - y, 0.0)
    return jnp.where(_impossible_mass(o, y, w), 0.0, grad)


def _grad_index_one(o, label, w):
    """d/do of `_cross_entropy_index_one`: ``softmax(o) - e_label``."""
    if o.shape[0] == 0:
        return jnp.zeros_like(o)
    _, p = _softmax_kept(o, w)
    valid, _, impossible = _index_loss_parts(o, label, w)
    grad = p - (jnp.arange(o.shape[0]) == label).astype(p.dtype)
    return _row_rules(jnp.where(impossible, 0.0, grad), valid, w)


@functools.partial(jax.jit, static_argnames=("layout", "is_index", "grad"))
def _compute(logits, labels, where, *, layout, is_index, grad):
    """The loss (or its gradient) of checked arguments, one compiled program.

    Rows of (n, q), the per-example function mapped over them with `jax.vmap`,
    and back to the layout of the logits. Compiled once per shape, so eager
    calls run as one program too; under an outer ``jit`` it is inlined.
    """
    rows = layout.to_rows(logits)
    if is_index:
        targets = labels.reshape(layout.num_examples)
        per_example = _grad_index_one if grad else _cross_entropy_index_one
    else:
        targets = layout.to_rows(labels.astype(logits.dtype))
        per_example = _grad_probs_one if grad else _cross_entropy_probs_one
    if where is not None:
        where = layout.to_rows(broadcast_where(where, logits.shape, layout, jnp))
    out = jax.vmap(per_example)(rows, targets, where)
    return layout.from_rows(out) if grad else out.reshape(layout.batch_shape)


def _checked_compute(logits, labels, axis, where, *, grad: bool) -> jax.Array:
    """`_compute` of the arguments after `check_arguments`."""
    args = check_arguments(logits, labels, axis, where)
    return _compute(
        args.logits,
        args.labels,
        args.where,
        layout=args.layout,
        is_index=args.is_index,
        grad=grad,
    )


# Public functions ---------------------------------------------------------------


def cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Per-example cross-entropy in nats: ``logsumexp(o) - <y, o>``.

    This is ``-sum_j y_j log softmax(o)_j``, the negative log-likelihood of the
    label under the model, computed from the logits so that it stays finite
    for any finite logits (and accurate: both terms are evaluated on the
    logits minus their maximum, which cancels exactly). Low-precision logits
    (bfloat16, float16) are computed in float32.

    It takes the arguments of `optax.softmax_cross_entropy` and
    `optax.softmax_cross_entropy_with_integer_labels` at once (the labels'
    shape says which), so code written for optax moves over unchanged.

    Masked classes: a logit of -inf is a class the model rules out. Labels
    with no weight on it see it drop out (0 log 0 = 0, like
    `optax.safe_softmax_cross_entropy`; a row of all -inf logits with all-zero
    labels costs 0); weight on it makes the loss +inf. The derivative w.r.t.
    such a y_j (truly +inf) is reported as 0 so that gradients stay finite;
    on the other classes it is exactly ``-log softmax(o)_j``.

    Out-of-range class indices (negative ones too) raise a ValueError when
    the labels are concrete; under ``jit``, where XLA cannot raise, such an
    example's loss is NaN (never a silent 0).

    Note on units: the lecture's worked example prints -log(0.78) = 0.108,
    which is the base-10 logarithm. In nats (natural log, what training
    minimises and what every library reports) it is 0.248; divide by ln(10)
    to get the lecture's number.

    Args:
      logits: o, of shape (..., q) (classes on ``axis``).
      labels: either integer class indices of the logits' shape without the
        class axes, each in [0, q), or probability vectors (one-hot or soft)
        of the logits' shape. Float labels of the shape of the indices are a
        TypeError.
      axis: the class axis, a tuple of class axes (flattened in the order
        given: an integer label is then a flat index into that slice), or
        None for all axes.
      where: optional boolean mask, either over examples (the logits' shape
        without the class axes) or broadcastable to the logits' shape (over
        classes). Excluded classes leave the softmax; an example with nothing
        included costs 0. As in optax, probability weight on an excluded
        class is ignored, while an integer label's own logit counts even when
        excluded. Examples masked out entirely may carry any label.

    Returns:
      The loss of each example: the logits' shape without the class axes,
      dtype at least float32.

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

      Classes on another axis, and a padded example masked out with ``where``:
      >>> o = jnp.array([[3.2, 0.0], [1.3, 0.0], [0.2, 0.0], [0.8, 0.0]])
      >>> js.cross_entropy(o, jnp.array([0, -1]), axis=0,
      ...                  where=jnp.array([True, False]))
      Array([0.255, 0.   ], dtype=float32)
    """
    return _checked_compute(logits, labels, axis, where, grad=False)


def cross_entropy_grad(
    logits: ArrayLike,
    labels: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """The closed-form gradient of `cross_entropy` w.r.t. the logits.

    ``dl/do_j = softmax(o)_j - y_j``: predicted minus observed probability
    (for labels that do not sum to 1, ``sum(y) softmax(o)_j - y_j``). It is
    exactly what `jax.grad` gives for `cross_entropy` with the same
    arguments: 0 on classes that ``where`` excludes or whose logit is -inf,
    0 for examples masked out entirely or whose loss is +inf, and NaN for
    an out-of-range label under ``jit`` (concrete ones raise).

    Args:
      logits: o, of shape (..., q) (classes on ``axis``).
      labels: integer class indices of the logits' shape without the class
        axes, or probability vectors of the logits' shape.
      axis: the class axis, a tuple of class axes, or None (as in
        `cross_entropy`).
      where: optional boolean mask over examples or classes (as in
        `cross_entropy`).

    Returns:
      An array of the logits' shape, dtype at least float32.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> js.cross_entropy_grad(jnp.array([0.0, 0.0]), jnp.array(1))
      Array([ 0.5, -0.5], dtype=float32)
    """
    return _checked_compute(logits, labels, axis, where, grad=True)


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
    weights = weights.astype(validation.compute_dtype(weights.dtype))
    return 0.5 * jnp.sum(jnp.square(weights))
