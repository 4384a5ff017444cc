"""`solve_lbfgs`: the exact optimum of `jaxsoft.loss` by full-batch L-BFGS."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.typing import ArrayLike

from jaxsoft import model, sharding, validation
from jaxsoft import objective as objective_lib
from jaxsoft.train import _compiling

__all__ = ["LbfgsInfo", "solve_lbfgs"]


class LbfgsInfo(NamedTuple):
    """Convergence report of `solve_lbfgs`.

    Attributes:
      iterations: L-BFGS iterations run.
      converged: whether ``||grad|| <= tol`` was reached within max_iter.
      objective: the final value of `jaxsoft.loss` (with the L2 term).
      grad_norm: the final gradient's Euclidean norm.
      evaluations: the objective's values and gradients the line searches
        computed, all iterations together (one per iteration when every
        first step is accepted; the iteration itself reuses the last).
    """

    iterations: int
    converged: bool
    objective: float
    grad_norm: float
    evaluations: int


@functools.lru_cache(maxsize=8)
def _make_lbfgs_solver(
    memory_size: int, mesh: Mesh
) -> Callable[..., tuple[model.Params, jax.Array, jax.Array, jax.Array, jax.Array]]:
    optimizer = optax.lbfgs(memory_size=memory_size)

    def solve(
        params: model.Params,
        x: jax.Array,
        y: jax.Array,
        l2: jax.Array,
        tol: jax.Array,
        max_iter: jax.Array,
        *,
        num_examples: int,
    ) -> tuple[model.Params, jax.Array, jax.Array, jax.Array, jax.Array]:
        # Rows past num_examples pad the split to the mesh: masked out.
        padded = x.shape[0] > num_examples
        where = jnp.arange(x.shape[0]) < num_examples if padded else None
        x = x.astype(params.W.dtype)

        def objective(p: model.Params) -> jax.Array:
            return objective_lib.loss(p, x, y, l2, where=where)

        value_and_grad = optax.value_and_grad_from_state(objective)

        def grad_norm(state: optax.OptState) -> jax.Array:
            return optax.tree.norm(optax.tree.get(state, "grad"))

        def step(carry: tuple[Any, ...]) -> tuple[Any, ...]:
            params, state, evaluations = carry
            value, grad = value_and_grad(params, state=state)
            updates, state = optimizer.update(
                grad, state, params, value=value, grad=grad, value_fn=objective
            )
            evaluations += optax.tree.get(state, "num_linesearch_steps")
            return optax.apply_updates(params, updates), state, evaluations

        def keep_going(carry: tuple[Any, ...]) -> jax.Array:
            state = carry[1]
            count = optax.tree.get(state, "count")
            return (count == 0) | ((count < max_iter) & (grad_norm(state) > tol))

        params, state, evaluations = jax.lax.while_loop(
            keep_going, step, (params, optimizer.init(params), jnp.int32(0))
        )
        return (
            params,
            optax.tree.get(state, "count"),
            optax.tree.get(state, "value"),
            grad_norm(state),
            evaluations,
        )

    return jax.jit(
        solve,
        static_argnames=("num_examples",),
        compiler_options=_compiling.compiler_options(mesh),
    )


def solve_lbfgs(
    params: model.Params,
    x: ArrayLike,
    y: ArrayLike,
    *,
    l2: float = 0.0,
    tol: float = 1e-5,
    max_iter: int = 1000,
    memory_size: int = 10,
    check_input: bool = True,
    mesh: Mesh | None = None,
) -> tuple[model.Params, LbfgsInfo]:
    """The minimiser of ``jaxsoft.loss(params, x, y, l2)`` by full-batch L-BFGS.

    Runs `optax.lbfgs` (zoom line search) inside one compiled
    `jax.lax.while_loop` until the gradient norm is at most ``tol`` or
    ``max_iter`` iterations are done. With l2 > 0 the objective is strictly
    convex and this is its unique optimum: the same as scikit-learn's
    ``LogisticRegression(solver="lbfgs", C=1 / (l2 * n))`` (which minimises
    the same function scaled by C * n). With l2 = 0 on separable data the
    optimum is at infinity and the solver stops at max_iter.

    Args:
      params: the starting point (e.g. ``init_params(key, d, q, scale=0.0)``).
      x: features of shape (n, d).
      y: integer labels of shape (n,) in [0, q).
      l2: L2 strength on W (>= 0).
      tol: stop when ``||grad||_2 <= tol``. In float32 the gradient's rounding
        noise is about 1e-7 times its terms, so tolerances far below 1e-6
        may never be reached.
      max_iter: the most iterations.
      memory_size: L-BFGS history length.
      check_input: validate x and y first; pass False only for a split
        already validated (e.g. of a `jaxsoft.data.Dataset`).
      mesh: a `jax.sharding.Mesh` with a "data" axis, or None for every
        device: the examples are sharded over it and each full-batch value
        and gradient is a sum over the shards.

    Returns:
      ``(params, info)`` with `LbfgsInfo` (iterations, converged, objective,
      grad_norm, evaluations).
    """
    validation.check_params(params)
    if check_input:
        x, y = validation.validate_split(
            x,
            y,
            num_classes=params.num_classes,
            num_features=params.num_features,
            split="train",
        )
    l2 = validation.non_negative_float("l2", l2)
    tol = validation.non_negative_float("tol", tol)
    max_iter = validation.positive_int("max_iter", max_iter)
    memory_size = validation.positive_int("memory_size", memory_size)
    mesh = sharding.resolve_mesh(mesh)
    solver = _make_lbfgs_solver(memory_size, mesh)
    dtype = np.dtype(params.W.dtype)
    split = sharding.place_split(x, y, mesh)
    params, iterations, value, norm, evaluations = solver(
        sharding.replicate(params, mesh),
        split.x,
        split.y,
        dtype.type(l2),
        dtype.type(tol),
        np.int32(max_iter),
        num_examples=split.num_examples,
    )
    norm = float(norm)
    info = LbfgsInfo(
        iterations=int(iterations),
        converged=bool(norm <= tol),
        objective=float(value),
        grad_norm=norm,
        evaluations=int(evaluations),
    )
    return params, info
