"""The solver's coordinates: a change of variables that preconditions each head.

For the features' weighted mean mu and covariance Sigma = V diag(lam) V^T,
head h with strength l2 is solved in coordinates (U, c') with

    W = V D_h U,    b = c - mu W,    c = c' / sqrt(alpha),
    D_h = diag(1 / sqrt(alpha * lam + l2)),

where alpha = 1/q is the softmax's curvature at the uniform prediction.
The map is linear and invertible, so the optimum (W, b) is unchanged; the
penalty keeps its exact value, (l2/2)||W||^2 = (l2/2)||D_h U||^2 (V is
orthogonal). At the start (W = 0) the Hessian of `jaxsoft.loss` in these
coordinates is the identity on every direction that matters (the class
contrasts), so the first L-BFGS step is a Newton step, and centring
decouples the intercept from the weights.

Many features: the eigendecomposition costs O(d^3) and the covariance pass
O(n d^2), so above `EIGH_MAX_FEATURES` features the basis is diagonal
(V = I, lam the per-feature variances): a cheaper preconditioner that still
evens out feature scales, though not their correlations. Without an
intercept, mu = 0 and Sigma is the second moment about 0.

The data passes see the features centred by ``shift`` (`jaxsoft.exact.passes`):
their logits are ``(x - shift) W + c_s`` with ``c_s = b + shift W``.

L1 penalties need the diagonal basis: there W = D_h U entry by entry, so
``l1 ||W||_1 = sum l1 D_j |U_jk|`` is a weighted L1 penalty on the solver's
coordinates (`l1_weights`), which OWL-QN (`jaxsoft.exact.lbfgs`) minimises
exactly, and a zero in U is a zero in W.

Flat coordinates per head: theta = concat(U.ravel(), c') of size d q + q.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsoft import model
from jaxsoft.exact.lbfgs import pseudo_gradient
from jaxsoft.exact.passes import Moments

__all__ = ["EIGH_MAX_FEATURES", "Basis", "make_basis"]

EIGH_MAX_FEATURES = 4096
"""Above this many features the preconditioner is diagonal (no eigh)."""


class Basis(NamedTuple):
    """Everything the change of variables needs (device arrays, compute dtype).

    Attributes:
      shift: (d,) the passes' centring.
      mu: (d,) the centre of the change of variables (0 without intercept).
      V: (d, d) eigenvectors as columns, or None (diagonal: V = I).
      lam: (d,) eigenvalues (or variances) >= 0.
      alpha: the curvature scale, 1/q.
      intercept: 1.0 when the intercept is trained, else 0.0.
    """

    shift: jax.Array
    mu: jax.Array
    V: jax.Array | None
    lam: jax.Array
    alpha: jax.Array
    intercept: jax.Array


def make_basis(
    moments: Moments,
    shift: np.ndarray,
    num_classes: int,
    *,
    dtype: Any,
    diagonal: bool,
    fit_intercept: bool = True,
) -> Basis:
    """The `Basis` for rows with these weighted moments about ``shift``, as
    NumPy arrays (`jaxsoft.sharding.replicate` puts it on the mesh)."""
    mean = shift + moments.mean
    second = moments.second
    if not fit_intercept:  # the second moment about 0, and no centring
        second = second + (mean * mean if diagonal else np.outer(mean, mean))
        mean = np.zeros_like(mean)
    if diagonal:
        lam, V = second, None
    else:
        lam, V = np.linalg.eigh((second + second.T) / 2)
    # A floor keeps D finite for flat directions when l2 = 0 (it shapes only
    # the preconditioner, never the objective).
    lam = np.clip(lam, max(1e-6 * float(np.max(lam, initial=0.0)), 1e-30), None)
    return Basis(
        shift=np.asarray(shift, dtype),
        mu=np.asarray(mean, dtype),
        V=None if V is None else np.asarray(V, dtype),
        lam=np.asarray(lam, dtype),
        alpha=np.asarray(1.0 / num_classes, dtype),
        intercept=np.asarray(1.0 if fit_intercept else 0.0, dtype),
    )


def _xp(a: Any) -> Any:
    """NumPy for NumPy arrays (host work, nothing compiled), else jax.numpy."""
    return np if isinstance(a, (np.ndarray, np.generic)) else jnp


def scales(basis: Basis, l2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """D_h (d,) and the intercept's scale (a scalar) for one head."""
    if _xp(basis.lam) is np:
        return 1 / np.sqrt(basis.alpha * basis.lam + l2), 1 / np.sqrt(basis.alpha)
    return jax.lax.rsqrt(basis.alpha * basis.lam + l2), jax.lax.rsqrt(basis.alpha)


def _unrotate(basis: Basis, a: jax.Array) -> jax.Array:
    return a if basis.V is None else basis.V.T @ a


def split(basis: Basis, theta: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Flat theta (..., d q + q) -> U (..., d, q), c' (..., q)."""
    d = basis.lam.shape[0]
    q = theta.shape[-1] // (d + 1)
    return theta[..., : d * q].reshape(*theta.shape[:-1], d, q), theta[..., d * q :]


def to_weights(basis: Basis, theta: jax.Array, l2: jax.Array) -> model.Params:
    """Solver coordinates theta (..., d q + q), strengths l2 (...) -> `Params`
    W (..., d, q), b (..., q) on the raw features. Traceable; with a NumPy
    basis and NumPy arrays it runs in NumPy (on the host, nothing compiled)."""
    xp = _xp(theta)
    D, dc = scales(basis, l2[..., None])
    U, cc = split(basis, theta)
    W = D[..., None] * U
    if basis.V is not None:
        W = xp.einsum("ij,...jq->...iq", basis.V, W)
    b = basis.intercept * dc * cc - xp.einsum("i,...iq->...q", basis.mu, W)
    return model.Params(W=W, b=b)


def to_pass(
    basis: Basis, theta: jax.Array, l2: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Solver coordinates -> the pass's (W (d, q), c_s (q,)) for x - shift."""
    params = to_weights(basis, theta, l2)
    return params.W, params.b + basis.shift @ params.W


def penalty(basis: Basis, theta: jax.Array, l2: jax.Array) -> jax.Array:
    """(l2/2) ||W||^2, computed in solver coordinates."""
    D, _ = scales(basis, l2)
    U, _ = split(basis, theta)
    return 0.5 * l2 * jnp.sum(jnp.square(D[:, None] * U))


def l1_weights(basis: Basis, l1: jax.Array, l2: jax.Array, q: int) -> jax.Array:
    """One head's L1 weights on its flat coordinates (d q + q,): ``l1 D_j`` on
    U's entries (the diagonal basis: W = D U), 0 on the intercept's. With
    a rotation V (no L1 heads: the engine picks the diagonal basis for them)
    the weights are 0."""
    D, _ = scales(basis, l2)
    if basis.V is not None:
        l1 = jnp.zeros_like(l1)
    weights = jnp.broadcast_to((l1 * D)[:, None], (D.shape[0], q)).ravel()
    return jnp.concatenate([weights, jnp.zeros((q,), weights.dtype)])


def to_solver_grad(
    basis: Basis, theta: jax.Array, gW: jax.Array, gc: jax.Array, l2: jax.Array
) -> jax.Array:
    """Gradient of the full objective in solver coordinates, flat (d q + q,).

    ``gW`` (d, q) and ``gc`` (q,) are the mean cross-entropy's gradient
    w.r.t. the pass's (W, c_s); the penalty's gradient l2 D^2 U is added here.
    """
    D, dc = scales(basis, l2)
    U, _ = split(basis, theta)
    dW = gW + jnp.outer(basis.shift - basis.mu, gc)  # through c_s = b + shift W
    gU = D[:, None] * _unrotate(basis, dW) + l2 * (D**2)[:, None] * U
    return jnp.concatenate([gU.ravel(), basis.intercept * dc * gc])


def raw_grad_norms(
    basis: Basis,
    theta: jax.Array,
    gW: jax.Array,
    gc: jax.Array,
    l2: jax.Array,
    l1: jax.Array | None,
) -> tuple[jax.Array, jax.Array]:
    """(max |g|, ||g||_2) of the objective's gradient w.r.t. the raw (W, b).

    The gradient a user would compute with `jax.grad` of `jaxsoft.loss`
    (the bias's part only when the intercept is trained); with an L1 term
    ``l1 ||W||_1`` (None: none), its minimum-norm subgradient.
    """
    W = to_weights(basis, theta, l2).W
    gW_raw = pseudo_gradient(W, gW + jnp.outer(basis.shift, gc) + l2 * W, l1)
    gb = basis.intercept * gc
    largest = jnp.maximum(jnp.max(jnp.abs(gW_raw)), jnp.max(jnp.abs(gb)))
    return largest, jnp.sqrt(jnp.sum(gW_raw**2) + jnp.sum(gb**2))


def from_params(basis: Basis, params: model.Params, l2: jax.Array) -> jax.Array:
    """`Params` W (..., d, q), b (..., q) on the raw features, strengths l2
    (...) -> flat solver coordinates (..., d q + q); NumPy for NumPy inputs."""
    xp = _xp(basis.lam)
    D, dc = scales(basis, xp.asarray(l2)[..., None])
    W = xp.asarray(params.W, basis.lam.dtype)
    b = xp.asarray(params.b, W.dtype) + xp.einsum("i,...iq->...q", basis.mu, W)
    if basis.V is not None:
        W = xp.einsum("ji,...jq->...iq", basis.V, W)
    U = W / D[..., None]
    flat = U.reshape(*U.shape[:-2], -1)
    return xp.concatenate([flat, basis.intercept * b / dc], axis=-1)
