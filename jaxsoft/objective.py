"""The training objective: mean cross-entropy plus an L2 penalty on W.

    L(W, b) = (1/n) sum_i l(y_i, x_i W + b) + (l2 / 2) ||W||^2

Minimising the mean cross-entropy is maximum likelihood: it is
-(1/n) log P(Y | X) under the model. The bias is not penalised.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxsoft import losses, model

__all__ = ["loss"]


def loss(
    params: model.Params,
    x: ArrayLike,
    y: ArrayLike,
    l2: float = 0.0,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Mean cross-entropy over the batch plus ``(l2 / 2) * ||W||^2``.

    Its gradient w.r.t. W is ``X^T (softmax(O) - Y) / n + l2 * W`` and w.r.t.
    b the column means of ``softmax(O) - Y``; `jax.grad` computes exactly
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
        checked.

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
    """
    logits = model.logits(params, x)
    if where is None:
        mean = jnp.mean(losses.cross_entropy(logits, y))
    else:
        per_example = losses.cross_entropy(logits, y, where=where)
        mean = jnp.sum(per_example) / jnp.sum(jnp.asarray(where, bool))
    return mean + l2 * losses.l2_penalty(params.W)
