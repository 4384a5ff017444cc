"""`solve_lbfgs`: the exact optimum of `jaxsoft.loss`, the exact engine's one-head case.

One L-BFGS in the package: `solve_lbfgs` is one call of `jaxsoft.exact.solve`
for a single head (one strength, every row), starting from the given
parameters, mesh-aware and weighted like the rest; it only maps the
`Solution` back to `Params` (replicated on the mesh) and an `LbfgsInfo`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh
from jax.typing import ArrayLike

from jaxsoft import model, sharding, validation
from jaxsoft.exact import solve

__all__ = ["LbfgsInfo", "solve_lbfgs"]


class LbfgsInfo(NamedTuple):
    """Convergence report of `solve_lbfgs`.

    Attributes:
      iterations: L-BFGS iterations run (accepted steps).
      converged: whether ``||grad||_2 <= tol`` (or the ``rtol`` gap test)
        was met within max_iter.
      objective: the final value of `jaxsoft.loss` (with the L2 term).
      grad_norm: the final gradient's Euclidean norm (w.r.t. W and b).
      evaluations: the objective's values and gradients computed (data
        passes), all iterations together: one per iteration when every
        first step is accepted, plus the one at the start.
    """

    iterations: int
    converged: bool
    objective: float
    grad_norm: float
    evaluations: int


def solve_lbfgs(
    params: model.Params,
    x: ArrayLike,
    y: ArrayLike,
    *,
    l2: float = 0.0,
    tol: float = 1e-5,
    rtol: float = 0.0,
    max_iter: int = 1000,
    memory_size: int = 10,
    check_input: bool = True,
    mesh: Mesh | None = None,
    sample_weight: ArrayLike | None = None,
) -> tuple[model.Params, LbfgsInfo]:
    """The minimiser of ``jaxsoft.loss(params, x, y, l2, sample_weight=w)``.

    Preconditioned full-batch L-BFGS (one head of `jaxsoft.exact.solve`)
    from ``params``, until the gradient's 2-norm is at most ``tol``, the
    estimated objective gap is at most ``rtol`` times the objective, or
    ``max_iter`` iterations are done. With l2 > 0 the objective is strictly
    convex and this is its unique optimum: the same as scikit-learn's
    ``LogisticRegression(solver="lbfgs", C=1 / (l2 * sum(w)))`` fitted with
    ``sample_weight=w`` (which minimises the same function scaled by
    C * sum(w)). With l2 = 0 on separable data the optimum is at infinity and
    the solver stops at max_iter. float64 inputs are solved in float64 when
    JAX's x64 mode is on, else in float32 (a large float64 solve runs most
    iterations in float32 first; the float64 ``tol`` still decides).

    Args:
      params: the starting point (e.g. ``init_params(key, d, q, scale=0.0)``).
      x: features of shape (n, d).
      y: integer labels of shape (n,) in [0, q).
      l2: L2 strength on W (>= 0).
      tol: stop when ``||grad||_2 <= tol``. In float32 the gradient's rounding
        noise is about 1e-7 times its terms, so tolerances far below 1e-6
        may never be reached.
      rtol: or when the estimated gap to the optimum <= rtol * objective
        (0: never).
      max_iter: the most iterations.
      memory_size: L-BFGS history length.
      check_input: validate x and y first; pass False only for a split
        already validated (e.g. of a `jaxsoft.data.Dataset`).
      mesh: a `jax.sharding.Mesh` with a "data" axis, or None for every
        device: the examples are sharded over it and each full-batch value
        and gradient is a sum over the shards.
      sample_weight: weights (n,) >= 0, or None for all 1.

    Returns:
      ``(params, info)`` with `LbfgsInfo` (iterations, converged, objective,
      grad_norm, evaluations).

    Example:
      >>> import jax, numpy as np
      >>> import jaxsoft as js
      >>> from jaxsoft.train import solve_lbfgs
      >>> rng = np.random.default_rng(0)
      >>> x = rng.normal(size=(100, 3)).astype(np.float32)
      >>> y = (x[:, 0] > 0).astype(np.int32)
      >>> zeros = js.init_params(jax.random.key(0), 3, 2, scale=0.0)
      >>> params, info = solve_lbfgs(zeros, x, y, l2=1e-2)
      >>> info.converged, info.grad_norm <= 1e-5
      (True, True)
    """
    validation.check_params(params)
    if check_input:  # here, for the message that names params' sizes
        x, y = validation.validate_split(
            x,
            y,
            num_classes=params.num_classes,
            num_features=params.num_features,
            split="train",
        )
    l2 = validation.non_negative_float("l2", l2)
    mesh = sharding.resolve_mesh(mesh)
    solution = solve(
        x,
        y,
        [l2],
        num_classes=params.num_classes,
        sample_weight=sample_weight,
        start=model.Params(*(np.asarray(jax.device_get(a)) for a in params)),
        rtol=rtol,
        gtol=tol,
        gtol_norm="l2",
        max_iter=max_iter,
        memory_size=memory_size,
        mesh=mesh,
        check_input=False,
    )
    W, b = (a[0, 0] for a in solution.params)
    info = LbfgsInfo(
        iterations=int(solution.iterations[0, 0]),
        converged=bool(solution.converged[0, 0]),
        objective=float(solution.objective[0, 0]),
        grad_norm=float(solution.grad_norm[0, 0]),
        evaluations=int(solution.passes[0, 0]),
    )
    return model.Params(*sharding.replicate((W, b), mesh)), info
