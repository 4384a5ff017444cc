"""The softmax-regression model: parameters, logits and predictions.

For an example x in R^d and q classes, with W in R^{d x q} and b in R^q:

    o = x W + b                 (one example, shape (q,))
    O = X W + b                 (a batch X in R^{n x d}, shape (n, q))
    P(y = j | x) = softmax(o)_j
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxsoft import losses, validation

__all__ = [
    "Params",
    "check_params",
    "init_params",
    "logits",
    "predict",
    "predict_proba",
    "top_k",
]


class Params(NamedTuple):
    """Softmax-regression parameters, a pytree.

    Attributes:
      W: weights of shape (d, q): column j scores class j.
      b: bias of shape (q,).
    """

    W: jax.Array
    b: jax.Array

    @property
    def num_features(self) -> int:
        """d, the input dimension."""
        return self.W.shape[0]

    @property
    def num_classes(self) -> int:
        """q, the number of classes."""
        return self.W.shape[1]


def _standard_normal_weights(
    key: jax.Array, num_features: int, num_classes: int, dtype: str
) -> Params:
    """(W ~ N(0, 1) of shape (d, q), b = 0 of shape (q,))."""
    weights = jax.random.normal(key, (num_features, num_classes), dtype)
    return Params(W=weights, b=jnp.zeros((num_classes,), dtype))


# The counter-based generator (threefry) is a long chain of integer ops:
# LLVM's full optimisation takes about 0.4 s to compile it on a CPU, level 1
# about 0.1 s, for the same bits; it runs once per run.
_standard_normal_weights_fast_compile = jax.jit(
    _standard_normal_weights,
    static_argnums=(1, 2, 3),
    compiler_options={"xla_backend_optimization_level": 1},
)


def init_params(
    key: jax.Array,
    num_features: int,
    num_classes: int,
    *,
    scale: float = 0.01,
    dtype: jnp.dtype = jnp.float32,
) -> Params:
    """Initial parameters: W ~ N(0, scale^2) entrywise, b = 0.

    The loss is convex in (W, b), so any starting point reaches the same
    optimum; small random weights (or ``scale=0.0``, all zeros) are the usual
    choice.

    Args:
      key: a `jax.random` key.
      num_features: d, the input dimension.
      num_classes: q, the number of classes (>= 2 for a meaningful softmax).
      scale: standard deviation of the weights.
      dtype: floating dtype of W and b.

    Returns:
      `Params` with W of shape (d, q) and b of shape (q,).

    Example:
      >>> import jax
      >>> import jaxsoft as js
      >>> params = js.init_params(jax.random.key(0), num_features=4, num_classes=3)
      >>> params.W.shape, params.b.shape
      ((4, 3), (3,))
    """
    num_features = validation.positive_int("num_features", num_features)
    num_classes = validation.positive_int("num_classes", num_classes)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype, got {dtype}.")
    draw = (  # compiler options apply to a top-level jit only
        _standard_normal_weights
        if isinstance(key, jax.core.Tracer)
        else _standard_normal_weights_fast_compile
    )
    standard = draw(key, num_features, num_classes, jnp.dtype(dtype).name)
    return standard._replace(W=scale * standard.W)  # scaled as drawn eagerly


def check_params(params: Params) -> None:
    """Raises TypeError unless ``params`` is `Params` with W (d, q) and b (q,).

    Args:
      params: the object to check.
    """
    if not isinstance(params, Params):
        raise TypeError(
            f"params must be jaxsoft.Params(W, b), got {type(params).__name__}."
        )
    W_shape, b_shape = jnp.shape(params.W), jnp.shape(params.b)
    if len(W_shape) != 2 or tuple(b_shape) != (W_shape[1],):
        raise TypeError(
            "params must have W of shape (d, q) and b of shape (q,), got "
            f"W {W_shape} and b {b_shape}."
        )


def _logits_one(params: Params, x: jax.Array) -> jax.Array:
    """o = x W + b for one example x of shape (d,): shape (q,)."""
    return x @ params.W + params.b


def logits(params: Params, x: ArrayLike) -> jax.Array:
    """The logits ``o = x W + b`` (batched: ``O = X W + b``).

    Written for one example and batched with `jax.vmap`, which XLA turns into
    one matrix product.

    Args:
      params: `Params` with W (d, q) and b (q,).
      x: one example of shape (d,) or a batch of shape (n, d). Floating x is
        used as is; bool or integer x is converted to W's dtype; anything
        else (strings, objects) is a TypeError.

    Returns:
      Logits of shape (q,) or (n, q).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> params = js.Params(W=jnp.ones((4, 3)), b=jnp.array([0.0, 1.0, 2.0]))
      >>> js.logits(params, jnp.ones((2, 4)))
      Array([[4., 5., 6.],
             [4., 5., 6.]], dtype=float32)
    """
    check_params(params)
    if not isinstance(x, jax.Array):  # NumPy data: check before JAX sees it
        x = np.asarray(x)
    if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == np.bool_) or (
        jnp.issubdtype(x.dtype, jnp.complexfloating)
    ):
        raise TypeError(
            f"x must be numeric, got dtype {x.dtype}. Pass real-valued "
            "features (floating point, integer or bool), e.g. "
            "x.astype(np.float32)."
        )
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        w_dtype = jnp.result_type(params.W)
        x = x.astype(w_dtype if jnp.issubdtype(w_dtype, jnp.floating) else jnp.float32)
    if x.ndim not in (1, 2):
        raise ValueError(
            f"x must be one example of shape (d,) or a batch of shape (n, d), "
            f"got shape {x.shape}. Flatten images first, e.g. "
            "x.reshape(len(x), -1)."
        )
    if x.shape[-1] != params.num_features:
        raise ValueError(
            f"x has {x.shape[-1]} features but W expects d = "
            f"{params.num_features} (W has shape {params.W.shape})."
        )
    if x.ndim == 1:
        return _logits_one(params, x)
    return jax.vmap(_logits_one, in_axes=(None, 0))(params, x)


def predict_proba(params: Params, x: ArrayLike) -> jax.Array:
    """Class probabilities ``softmax(x W + b)``.

    Args:
      params: `Params` with W (d, q) and b (q,).
      x: shape (d,) or (n, d).

    Returns:
      Probabilities of shape (q,) or (n, q), each row summing to 1.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> params = js.Params(W=jnp.zeros((2, 4)), b=jnp.zeros(4))
      >>> js.predict_proba(params, jnp.ones(2))
      Array([0.25, 0.25, 0.25, 0.25], dtype=float32)
    """
    return losses.softmax(logits(params, x))


def predict(params: Params, x: ArrayLike) -> jax.Array:
    """The most probable class, ``argmax_j o_j`` (the same as of softmax(o)).

    Args:
      params: `Params` with W (d, q) and b (q,).
      x: shape (d,) or (n, d).

    Returns:
      Integer class indices of shape () or (n,).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> params = js.Params(W=jnp.eye(3), b=jnp.zeros(3))
      >>> js.predict(params, jnp.array([[0.1, 0.9, 0.0], [2.0, 0.0, 1.0]]))
      Array([1, 0], dtype=int32)
    """
    return jnp.argmax(logits(params, x), axis=-1)


def top_k(params: Params, x: ArrayLike, k: int = 3) -> tuple[jax.Array, jax.Array]:
    """The k most probable classes of each example and their probabilities.

    Args:
      params: `Params` with W (d, q) and b (q,).
      x: shape (d,) or (n, d).
      k: how many classes (clipped to q).

    Returns:
      ``(classes, probabilities)``, both of shape (..., min(k, q)), most
      probable first; classes int32.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxsoft as js
      >>> params = js.Params(W=jnp.eye(3), b=jnp.zeros(3))
      >>> classes, probs = js.top_k(params, jnp.array([[0.0, 2.0, 1.0]]), k=2)
      >>> classes
      Array([[1, 2]], dtype=int32)
    """
    k = validation.positive_int("k", k)
    probabilities = predict_proba(params, x)
    top_probabilities, classes = jax.lax.top_k(
        probabilities, min(k, params.num_classes)
    )
    return classes, top_probabilities
