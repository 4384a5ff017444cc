"""The solver's coordinates: a change of variables that preconditions each head.

For the features' mean mu and covariance Sigma = V diag(lam) V^T, head h
with strength l2 is solved in coordinates (U, c') with

    W = V D_h U,    b = c - mu W,    c = c' / sqrt(alpha),
    D_h = diag(1 / sqrt(alpha * lam + l2)),

where alpha = 1/q is the softmax's curvature at the uniform prediction.
The map is linear and invertible, so the optimum (W, b) is unchanged; the
penalty keeps its exact value, (l2/2)||W||^2 = (l2/2)||D_h U||^2 (V is
orthogonal). At the start (W = 0) the Hessian of `jaxsoft.loss` in these
coordinates is the identity on every direction that matters (the class
contrasts), so the first L-BFGS step is a Newton step, and centring
decouples the intercept from the weights.

Flat coordinates per head: theta = concat(U.ravel(), c') of size d q + q.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsoft import model
from jaxsoft.probe.passes import Standardise

__all__ = ["Basis", "make_basis"]


class Basis(NamedTuple):
    """Everything the change of variables needs (float32 device arrays).

    Attributes:
      st: the pass's standardisation (mu, inv_s), each (d,).
      s: feature scales (d,), 1 / inv_s.
      V: eigenvectors of the covariance (d, d), as columns.
      lam: eigenvalues (d,) >= 0.
      alpha: the curvature scale (a scalar), 1/q.
    """

    st: Standardise
    s: jax.Array
    V: jax.Array
    lam: jax.Array
    alpha: jax.Array


def make_basis(mean: np.ndarray, cov: np.ndarray, num_classes: int) -> Basis:
    """The `Basis` for features with this mean (d,) and covariance (d, d)."""
    var = np.clip(np.diag(cov), 0.0, None)
    scale = np.sqrt(var)
    scale = np.where(scale > 1e-12 * max(scale.max(), 1e-30), scale, 1.0)
    lam, V = np.linalg.eigh((cov + cov.T) / 2)
    lam = np.clip(lam, 0.0, None)
    f32 = jnp.float32
    return Basis(
        st=Standardise(mu=jnp.asarray(mean, f32), inv_s=jnp.asarray(1 / scale, f32)),
        s=jnp.asarray(scale, f32),
        V=jnp.asarray(V, f32),
        lam=jnp.asarray(lam, f32),
        alpha=jnp.asarray(1.0 / num_classes, f32),
    )


def scales(basis: Basis, l2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """D_h (d,) and the intercept's scale (a scalar) for one head."""
    return jax.lax.rsqrt(basis.alpha * basis.lam + l2), jax.lax.rsqrt(basis.alpha)


def split(basis: Basis, theta: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Flat theta (d q + q,) -> U (d, q), c' (q,)."""
    d = basis.V.shape[0]
    q = theta.shape[0] // (d + 1)
    return theta[: d * q].reshape(d, q), theta[d * q :]


def to_pass(
    basis: Basis, theta: jax.Array, l2: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Solver coordinates -> the pass's (Wt (d, q), c (q,)) for standardised x."""
    D, dc = scales(basis, l2)
    U, cc = split(basis, theta)
    W = basis.V @ (D[:, None] * U)
    return basis.s[:, None] * W, dc * cc


def penalty(basis: Basis, theta: jax.Array, l2: jax.Array) -> jax.Array:
    """(l2/2) ||W||^2, computed in solver coordinates."""
    D, _ = scales(basis, l2)
    U, _ = split(basis, theta)
    return 0.5 * l2 * jnp.sum(jnp.square(D[:, None] * U))


def to_solver_grad(
    basis: Basis, theta: jax.Array, gWt: jax.Array, gc: jax.Array, l2: jax.Array
) -> jax.Array:
    """Gradient of the full objective in solver coordinates, flat (d q + q,).

    ``gWt`` (d, q) and ``gc`` (q,) are the mean cross-entropy's gradient in
    the pass's coordinates; the penalty's gradient l2 D^2 U is added here.
    """
    D, dc = scales(basis, l2)
    U, _ = split(basis, theta)
    gU = D[:, None] * (basis.V.T @ (basis.s[:, None] * gWt)) + l2 * (D**2)[:, None] * U
    return jnp.concatenate([gU.ravel(), dc * gc])


def to_params(basis: Basis, theta: jax.Array, l2: jax.Array) -> model.Params:
    """Solver coordinates -> `Params` (W (d, q), b (q,)) on the raw features."""
    D, dc = scales(basis, l2)
    U, cc = split(basis, theta)
    W = basis.V @ (D[:, None] * U)
    return model.Params(W=W, b=dc * cc - basis.st.mu @ W)


def from_params(basis: Basis, params: model.Params, l2: jax.Array) -> jax.Array:
    """`Params` on the raw features -> flat solver coordinates."""
    D, dc = scales(basis, l2)
    U = (basis.V.T @ params.W) / D[:, None]
    cc = (params.b + basis.st.mu @ params.W) / dc
    return jnp.concatenate([U.ravel(), cc])
