"""A solve's problem: its rows on the mesh, the change of variables, and runs.

`prepare` places the rows (`jaxsoft.exact.placement`) and builds the
preconditioner from one moments pass (`jaxsoft.exact.basis`); `run` solves
heads on the prepared problem (`jaxsoft.exact.solver`), from starting points
(`prior_start`, `params_start`) or from an earlier run's final states;
`to_params` maps the solver's coordinates back to `Params`. `settings` checks
the solver's settings, and `rough_problem` is a large float64 problem's
float32 copy, for the first iterations.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from jaxsoft import model, sharding, validation
from jaxsoft.exact import basis as basis_lib
from jaxsoft.exact import host_blas, lbfgs, placement
from jaxsoft.exact.inputs import SolveInputError
from jaxsoft.exact.passes import (
    Part,
    Rows,
    compute_dtype,
    host_moments,
    moments_pass,
    sample_mean,
)
from jaxsoft.exact.solver import Heads, Progress, solve_heads

__all__ = [
    "ROUGH_MIN_WORK",
    "ROUGH_RTOL",
    "Problem",
    "params_start",
    "prepare",
    "prior_start",
    "rough_problem",
    "run",
    "settings",
    "to_params",
]


class Problem(NamedTuple):
    """The rows on the mesh and the change of variables, ready to solve.

    ``basis`` is on the mesh (replicated), or in NumPy where the solve's
    device loop takes it as it is (`_placed_basis`); ``host_basis`` is the
    same in NumPy.
    """

    rows: Rows
    basis: basis_lib.Basis
    num_classes: int
    dtype: np.dtype
    host_basis: basis_lib.Basis


def prepare(
    parts: Sequence[Part],
    num_classes: int,
    *,
    mesh: Mesh,
    budget: int,
    chunk_rows: int,
    fit_intercept: bool = True,
    diagonal: bool = False,
) -> Problem:
    """Places ``parts`` on the mesh and builds the preconditioner (one pass,
    or NumPy's moments of small host rows: `host_moments`);
    ``diagonal`` asks for the diagonal basis whatever the number of features
    (L1 heads need it)."""
    dtype = compute_dtype(parts[0].x.dtype)
    shift = sample_mean(parts) if fit_intercept else np.zeros(parts[0].x.shape[1])
    rows = placement.make_rows(
        parts,
        mesh=mesh,
        budget=budget,
        rows_per_chunk=chunk_rows,
        dtype=dtype,
        shift=shift,
    )
    diagonal = diagonal or rows.sparse or rows.d > basis_lib.EIGH_MAX_FEATURES
    d = rows.d
    with host_blas.small_work(rows.n * d + (0 if diagonal else rows.n * d * d + d**3)):
        moments = host_moments(parts, shift, diagonal=diagonal)  # None: not NumPy
        if moments is None:
            moments = moments_pass(rows, diagonal=diagonal)
        basis = basis_lib.make_basis(
            moments,
            shift,
            num_classes,
            dtype=dtype,
            diagonal=diagonal,
            fit_intercept=fit_intercept,
        )
    return Problem(rows, _placed_basis(basis, rows), num_classes, dtype, basis)


def _placed_basis(basis: basis_lib.Basis, rows: Rows) -> basis_lib.Basis:
    """The basis as the solve takes it: NumPy where its device loop takes
    NumPy as it is (one process, rows in memory: no copy a fit, 0.3 ms of a
    small one), else replicated on the mesh."""
    if jax.process_count() == 1 and rows.stacked is not None:
        return basis
    return sharding.replicate(basis, rows.mesh)


def prior_start(
    problem: Problem, y: np.ndarray, w: np.ndarray | None, H: int, intercept: bool
) -> np.ndarray:
    """Starting points (H, P): W = 0 and the intercept at the class log-priors."""
    q, d = problem.num_classes, problem.rows.d
    counts = np.bincount(y, weights=w, minlength=q)[:q]
    prior = counts + 0.5 * counts.sum() / max(len(y), 1)
    c = np.log(prior / prior.sum())
    theta = np.zeros((H, d * q + q), problem.dtype)
    alpha = 1.0 / q
    if intercept:
        theta[:, -q:] = (c - c.mean()) * np.sqrt(alpha)
    return theta


def params_start(problem: Problem, start: model.Params, l2: np.ndarray) -> np.ndarray:
    """Starting points (H, P) from `Params` W (H, d, q), b (H, q)."""
    start = model.Params(*(np.asarray(jax.device_get(a)) for a in start))
    l2 = np.asarray(l2, problem.dtype)
    return basis_lib.from_params(problem.host_basis, start, l2).astype(problem.dtype)


def run(
    problem: Problem,
    l2: np.ndarray,
    group: np.ndarray,
    count: np.ndarray,
    start: jax.Array | lbfgs.HeadState,
    cfg: lbfgs.Settings,
    progress: Callable[[Progress], None] | None = None,
    l1: np.ndarray | None = None,
    *,
    going_on: bool | None = None,
) -> lbfgs.HeadState:
    """Solves heads (H,) with L2 strengths, training sets and total weights
    (and L1 strengths, None: 0), from points (H, P) or on from an earlier
    run's final states (its memory kept, its iteration counts going on), or
    with ``going_on=False`` from starting states (`solver.carry`'s)."""
    dt = problem.dtype
    l1 = np.zeros(len(l2)) if l1 is None else np.asarray(l1)
    if np.any(l1 > 0) and problem.host_basis.V is not None:
        raise ValueError("L1 heads need a problem prepared with diagonal=True.")
    heads = Heads(
        l2=np.asarray(l2, dt),
        l1=l1.astype(dt),
        group=np.asarray(group, np.int32),
        count=count.astype(dt),
    )
    if not isinstance(start, lbfgs.HeadState):
        start = np.asarray(sharding.to_host(start), dt)
    return solve_heads(
        problem.rows, problem.basis, heads, start, cfg, progress, going_on=going_on
    )


def to_params(problem: Problem, theta: jax.Array, l2: np.ndarray) -> model.Params:
    """Solver coordinates (H, P) -> `Params` W (H, d, q), b (H, q) in NumPy."""
    theta = sharding.to_host(theta) if isinstance(theta, jax.Array) else theta
    l2 = np.asarray(l2, problem.dtype)
    params = basis_lib.to_weights(problem.host_basis, theta, l2)
    return model.Params(*(a.astype(problem.dtype, copy=False) for a in params))


def settings(
    rtol: float,
    gtol: float | None,
    gtol_norm: lbfgs.GradNorm,
    max_iter: int,
    memory: int = 10,
) -> lbfgs.Settings:
    """Checked `lbfgs.Settings` (a `SolveInputError` names a bad one).

    Args:
      rtol: the relative-gap test, >= 0 (0: never).
      gtol: the gradient test, >= 0, or None (never).
      gtol_norm: the gradient test's norm, "max" or "l2".
      max_iter: iterations per head, >= 1.
      memory: the L-BFGS history length, >= 1 (``memory_size`` in errors).
    """
    try:
        rtol = validation.non_negative_float("rtol", rtol)
        gtol = 0.0 if gtol is None else validation.non_negative_float("gtol", gtol)
        max_iter = validation.positive_int("max_iter", max_iter)
        memory = validation.positive_int("memory_size", memory)
    except ValueError as err:
        raise SolveInputError(str(err)) from None
    if gtol_norm not in typing.get_args(lbfgs.GradNorm):
        raise SolveInputError(f'gtol_norm must be "max" or "l2", got {gtol_norm!r}.')
    return lbfgs.Settings(
        rtol=rtol, gtol=gtol, gtol_norm=gtol_norm, max_iter=max_iter, memory=memory
    )


# float64 solves of at least this much work per pass (rows x heads x classes
# x features) run most iterations in float32 first, where a pass costs half
# as much or less on a CPU (`benchmarks/bench_practitioner.py` prints both
# for MNIST), then go on in float64 from there, which decides convergence and
# the result.
ROUGH_MIN_WORK = 1 << 27

# The float32 stage stops at this estimated relative gap (or the solve's
# own tests): about as far as float32's rounding lets it go.
ROUGH_RTOL = 1e-6


def rough_problem(
    problem: Problem, parts: Sequence[Part], budget: int, chunk: int, heads: int
) -> Problem | None:
    """The float32 copy of a float64 problem whose pass is large (same basis),
    or None."""
    rows = problem.rows
    # Not for sparse rows: JAX's CSR kernel is no faster in float32 on a CPU
    # (`benchmarks/bench_sparse.py` prints it in both dtypes).
    if problem.dtype != np.float64 or rows.stacked is None or rows.sparse:
        return None
    q = problem.num_classes
    if rows.n * rows.d * q * heads < ROUGH_MIN_WORK:
        return None
    float32_bytes = sum(placement.device_bytes(p.x, np.float32) for p in parts)
    if float32_bytes // sharding.num_shards(rows.mesh) > budget // 2:
        return None  # two copies of the rows would not fit
    rough_rows = placement.make_rows(
        parts, mesh=rows.mesh, budget=budget, rows_per_chunk=chunk,
        dtype=np.float32, shift=np.asarray(problem.host_basis.shift, np.float64),
    )  # fmt: skip
    basis = basis_lib.Basis(
        *(None if a is None else np.asarray(a, np.float32) for a in problem.host_basis)
    )
    placed = _placed_basis(basis, rough_rows)
    return Problem(rough_rows, placed, q, np.dtype(np.float32), basis)
