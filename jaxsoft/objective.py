"""The training objective: weighted mean cross-entropy plus an L2 penalty on W.

    L(W, b) = sum_i w_i l(y_i, x_i W + b) / sum_i w_i + (l2 / 2) ||W||^2

With every w_i = 1 this is the mean cross-entropy, and minimising it is
maximum likelihood: it is -(1/n) log P(Y | X) under the model. The weights
follow scikit-learn (`jaxsoft.weights`): integer weights equal repeated
rows. The bias is not penalised. The one objective of the package: the
minibatch trainer, the exact solver and the probe all minimise it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxsoft import losses, model, validation, weights

__all__ = ["loss"]


def loss(
    params: model.Params,
    x: ArrayLike,
    y: ArrayLike,
    l2: float = 0.0,
    *,
    where: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
    weight_sum: ArrayLike | None = None,
) -> jax.Array:
    """Weighted mean cross-entropy plus ``(l2 / 2) * ||W||^2``.

    ``sum_i w_i CE_i / sum_i w_i + (l2 / 2) ||W||^2``, the objective of
    scikit-learn's ``LogisticRegression(C=1 / (l2 * sum(w)))`` fitted with
    ``sample_weight=w``. Its gradient w.r.t. W is
    ``X^T diag(w) (softmax(O) - Y) / sum(w) + l2 * W`` and w.r.t. b the
    weighted column means of ``softmax(O) - Y``; `jax.grad` computes exactly
    that.

    Args:
      params: `Params` with W (d, q) and b (q,).
      x: inputs of shape (n, d) (or one example of shape (d,)); numeric
        (bool and integer x are converted), else a TypeError.
      y: integer labels of shape (n,), each in [0, q), or probability vectors
        of shape (n, q).
      l2: the L2 regularisation strength (>= 0); may be a traced value.
      where: optional bool mask of shape (n,): the mean is over these
        examples only (e.g. padding rows masked out); their labels are not
        checked. It multiplies the weights.
      sample_weight: optional weights of shape (n,), each >= 0 (None: all
        1). Checked on the host where concrete (`jaxsoft.weights`).
      weight_sum: what the weighted sum of cross-entropies is divided by, in
        place of ``sum_i w_i`` over these rows (may be traced). A minibatch
        of B rows drawn from a split of n passes ``B * sum(w) / n`` (the
        batch's expected share of the split's weight), so that its gradient
        is an unbiased estimate of the whole split's (`jaxsoft.train.fit`).

    Returns:
      A scalar in nats, dtype at least float32. A label outside [0, q) is a
      ValueError when the labels are concrete; under ``jit`` it makes the loss
      NaN (never a silent 0).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> params = js.init_params(jax.random.key(0), 4, 3, scale=0.0)
      >>> x, y = jnp.ones((2, 4)), jnp.array([0, 2])
      >>> round(float(js.loss(params, x, y)), 4)  # log(3): uniform prediction
      1.0986
      >>> grads = jax.grad(js.loss)(params, x, y)
      >>> grads.W.shape, grads.b.shape
      ((4, 3), (3,))
      >>> x = jnp.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
      >>> p = js.Params(jnp.eye(4, 3), jnp.zeros(3))
      >>> twice = jnp.concatenate([x, x[1:]]), jnp.array([0, 2, 2])
      >>> bool(jnp.isclose(js.loss(p, x, y, sample_weight=jnp.array([1.0, 2.0])),
      ...                  js.loss(p, *twice)))
      True
    """
    logits = model.logits(params, x)
    if where is None and sample_weight is None and weight_sum is None:
        mean = jnp.mean(losses.cross_entropy(logits, y))
    else:
        weight = _weights(where, sample_weight, logits)
        per_example = losses.cross_entropy(logits, y, where=weight > 0)
        per_example = jnp.where(weight > 0, per_example, 0.0)
        total = jnp.sum(weight) if weight_sum is None else weight_sum
        mean = jnp.sum(weight * per_example) / total
    return mean + l2 * losses.l2_penalty(params.W)


def _weights(
    where: ArrayLike | None, sample_weight: ArrayLike | None, logits: jax.Array
) -> jax.Array:
    """Each example's weight (n,): the sample weight times the mask."""
    n = logits.shape[0] if logits.ndim == 2 else 1
    dtype = jnp.promote_types(logits.dtype, jnp.float32)
    if sample_weight is None:
        weight = jnp.ones((n,), dtype)
    else:
        if validation.concrete_value(sample_weight) is not None:
            weights.check_sample_weight(np.asarray(sample_weight), n)
        weight = jnp.asarray(sample_weight, dtype).reshape(n)
    if where is not None:
        weight = weight * jnp.asarray(where, bool).reshape(n)
    return weight
