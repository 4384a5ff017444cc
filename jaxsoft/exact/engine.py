"""`solve`: the exact optimum of `jaxsoft.loss` for many heads in shared passes.

The one exact solver of the package. Head (g, l) minimises

    sum_{i in set g} w_i CE_i / sum_{i in set g} w_i
        + (l2_l / 2) ||W||^2 + l1_l ||W||_1

(the bias not penalised) over the rows of training set g: scikit-learn's
``LogisticRegression(C=1 / (l2 * sum(w)))`` with ``sample_weight=w`` (and
its elastic net, ``l1_ratio = l1 / (l1 + l2)``). Every set and every
strength is solved together by preconditioned L-BFGS, OWL-QN for heads with
an L1 term (`jaxsoft.exact.basis`, `jaxsoft.exact.lbfgs`), one pass over the data per
iteration for every head, the rows sharded over the mesh
(`jaxsoft.sharding`). `jaxsoft.train.solve_lbfgs` is its one-head case,
`jaxsoft.probe.sweep` and the scikit-learn estimators are built on it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from jaxsoft import model, sharding, validation
from jaxsoft.exact import basis as basis_lib
from jaxsoft.exact import lbfgs, placement, sparse_rows
from jaxsoft.exact.inputs import (
    SolveInputError,
    check_l2,
    checked_sets,
    checked_weight,
    default_num_classes,
    validate_features,
)
from jaxsoft.exact.passes import Part, Rows, compute_dtype, moments_pass, sample_mean
from jaxsoft.exact.solver import Heads, Progress, carry, solve_heads

__all__ = ["Solution", "solve"]


class Solution(NamedTuple):
    """Every head of a `solve`, as NumPy arrays with leading axes (G, L).

    Attributes:
      params: `Params` with W (G, L, d, q) and b (G, L, q).
      objective: (G, L) each head's final objective on its set.
      iterations: (G, L) accepted L-BFGS iterations.
      converged: (G, L) whether the head met ``rtol`` or ``gtol``.
      passes: (G, L) data passes the head took part in.
      grad_norm: (G, L) the raw gradient's norm (``gtol_norm``) at the end.
    """

    params: model.Params
    objective: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    passes: np.ndarray
    grad_norm: np.ndarray


class Problem(NamedTuple):
    """The rows on the mesh and the change of variables, ready to solve.

    ``basis`` is on the mesh (replicated), ``host_basis`` the same in NumPy.
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
    """Places ``parts`` on the mesh and builds the preconditioner (one pass);
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
    moments = moments_pass(rows, diagonal=diagonal)
    basis = basis_lib.make_basis(
        moments,
        shift,
        num_classes,
        dtype=dtype,
        diagonal=diagonal,
        fit_intercept=fit_intercept,
    )
    return Problem(rows, sharding.replicate(basis, mesh), num_classes, dtype, basis)


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
    mesh, dt = problem.rows.mesh, problem.dtype
    l1 = np.zeros(len(l2)) if l1 is None else np.asarray(l1)
    if np.any(l1 > 0) and problem.host_basis.V is not None:
        raise ValueError("L1 heads need a problem prepared with diagonal=True.")
    heads = Heads(
        l2=np.asarray(l2, dt),
        l1=l1.astype(dt),
        group=np.asarray(group, np.int32),
        count=count.astype(dt),
    )
    heads = sharding.replicate(heads, mesh)
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


def _start_params(start: model.Params, G: int, L: int, d: int, q: int):
    """``start`` broadcast to W (G L, d, q), b (G L, q)."""
    W, b = np.asarray(jax.device_get(start.W)), np.asarray(jax.device_get(start.b))
    if W.shape == (d, q) and b.shape == (q,):
        W, b = np.broadcast_to(W, (G, L, d, q)), np.broadcast_to(b, (G, L, q))
    if W.shape != (G, L, d, q) or b.shape != (G, L, q):
        raise SolveInputError(
            f"start must have W of shape ({d}, {q}) or ({G}, {L}, {d}, {q}) and b "
            f"of shape ({q},) or ({G}, {L}, {q}), got {W.shape} and {b.shape}."
        )
    return model.Params(W.reshape(G * L, d, q), b.reshape(G * L, q))


# float64 solves of at least this much work per pass (rows x heads x classes
# x features) run most iterations in float32 first, where a pass costs half
# as much or less on a CPU (`benchmarks/bench_practitioner.py` prints both
# for MNIST), then go on in float64 from there, which decides convergence and
# the result.
ROUGH_MIN_WORK = 1 << 27

# The float32 stage stops at this estimated relative gap (or the solve's
# own tests): about as far as float32's rounding lets it go.
ROUGH_RTOL = 1e-6


def _rough_problem(
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
    replicated = sharding.replicate(basis, rows.mesh)
    return Problem(rough_rows, replicated, q, np.dtype(np.float32), basis)


def solve(
    x: Any,
    y: Any,
    l2: Sequence[float],
    *,
    l1: Sequence[float] | None = None,
    num_classes: int | None = None,
    sample_weight: Any = None,
    row_sets: Any = None,
    more_rows: Sequence[Part] = (),
    start: model.Params | None = None,
    rtol: float = 1e-7,
    gtol: float | None = None,
    gtol_norm: lbfgs.GradNorm = "max",
    max_iter: int = 1000,
    memory_size: int = 10,
    fit_intercept: bool = True,
    mesh: Mesh | None = None,
    max_device_bytes: int | None = None,
    chunk_rows: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    check_input: bool = True,
    polish: tuple[float, int] | None = None,
) -> Solution:
    """The exact optimum of every (training set, strength) head, solved together.

    Args:
      x: features (n, d): NumPy (memmaps too) or JAX; any float dtype (bf16
        and f16 are computed in float32; float64 in float64 when JAX's x64
        mode is on, e.g. inside ``with jax.enable_x64(True):``), integer or
        bool.
      y: integer labels (n,) in [0, q).
      l2: the L2 strengths (L,), each >= 0, the same for every training set;
        or (G, L), one row per set (scikit-learn's ``1 / (C S_g)`` differs
        per cross-validation fold with the fold's total weight ``S_g``). A
        head with no penalty at all has no optimum on separable data.
      l1: the L1 strengths, each >= 0, of l2's shape (None: all 0). Heads
        with an L1 term are solved by OWL-QN in the diagonal basis (then
        every head of the solve uses it); their optimum has exact zeros.
      num_classes: q (default: the largest label + 1).
      sample_weight: (n,) weights >= 0 (None: all 1).
      row_sets: (G, n) bool, the rows of each training set (e.g. the train
        indices of each cross-validation split); None: one set of every row.
      more_rows: more blocks of rows, `Part`s (x, y, w; their ``member``
        ignored), in every training set after x's rows, placed beside them
        and never copied into one array (e.g. a validation split added for
        a refit); validated with x when ``check_input``.
      start: the starting point, `Params` with W (d, q), b (q,) for every
        head or W (G, L, d, q), b (G, L, q); None: W = 0, b at the class
        log-priors.
      rtol: stop a head when its estimated objective gap is at most
        ``rtol * |objective|`` (0: never).
      gtol: or when the norm of its gradient w.r.t. the raw (W, b) is at
        most ``gtol`` (None: never); ``gtol_norm`` "max" (the largest entry,
        scikit-learn's ``tol``) or "l2".
      max_iter: L-BFGS iterations per head at most.
      memory_size: L-BFGS history length.
      fit_intercept: False fixes b at 0.
      mesh: a `jax.sharding.Mesh` with a "data" axis (None: every device);
        the rows are sharded over it and XLA adds up each pass's sums.
      max_device_bytes: a device's share of the features above this stays
        on the host and streams through in row chunks (default: half the
        device memory; a quarter of RAM on CPU). The result is the same.
      chunk_rows: rows per chunk (default: sized for the heads' buffers).
      progress: called with a `Progress` after every data pass.
      check_input: validate x, y (pass False only for validated splits).
      polish: (gtol, iterations): after the solve, go on from its solution
        (its L-BFGS memory kept) to this tighter ``gtol`` in at most this
        many more iterations (within ``max_iter`` in all), on the same placed
        rows. ``converged`` still reports the first stopping rule.

    Returns:
      A `Solution` (NumPy arrays with leading axes (G, L)).

    Raises:
      SolveInputError: invalid inputs or settings (a ValueError).

    Example:
      >>> import numpy as np
      >>> from jaxsoft.exact import solve
      >>> rng = np.random.default_rng(0)
      >>> y = rng.integers(0, 3, 200)
      >>> x = rng.normal(size=(200, 4)) + np.eye(3, 4)[y]
      >>> sol = solve(x, y, [1e-3, 1e-1], sample_weight=rng.uniform(0.5, 2, 200))
      >>> sol.params.W.shape, bool(sol.converged.all())
      ((1, 2, 4, 3), True)
    """
    l2 = check_l2(l2, per_set=True, allow_zero=True)
    if l1 is None:
        l1 = np.zeros_like(l2)
    l1 = check_l2(l1, per_set=True, name="l1", allow_zero=True)
    if l1.shape != l2.shape:
        raise SolveInputError(
            f"l1 must have the shape of l2, {l2.shape}, got {l1.shape}."
        )
    cfg = settings(rtol, gtol, gtol_norm, max_iter, memory_size)
    q = default_num_classes(y) if num_classes is None else num_classes
    if check_input:
        x, y = validate_features(x, y, num_classes=q, num_features=None, split="train")
    y = np.asarray(jax.device_get(y), np.int32)
    n, d = len(y), int(x.shape[1])
    w = checked_weight(sample_weight, n, "train")
    sets = checked_sets(row_sets, n)
    G, L = len(sets), l2.shape[-1]
    if l2.ndim == 2 and l2.shape[0] != G:
        raise SolveInputError(
            f"l2 has {l2.shape[0]} rows of strengths but row_sets has {G} "
            "training sets; give one row per set, or one row (L,) for all."
        )
    more = _more_parts(more_rows, q, d, G, check_input)
    count = sets.astype(np.float64) @ (np.ones(n) if w is None else w)
    count += sum(float(np.sum(p.w)) for p in more)
    if not np.all(count > 0):
        bad = int(np.flatnonzero(~(count > 0))[0])
        raise SolveInputError(f"training set {bad} has a total sample weight of 0.")
    mesh = sharding.resolve_mesh(mesh)
    if start is not None:
        start = _start_params(start, G, L, d, q)
    kept = None
    if sparse_rows.is_sparse(x) and not more:  # empty columns: their optimum is 0
        x, kept = sparse_rows.without_empty_columns(x)
        if kept is not None:
            d = int(kept.sum())
            if start is not None:
                start = model.Params(start.W[:, kept], start.b)
    parts = [Part(x, y, w, sets.T), *more]
    budget = placement.device_budget(max_device_bytes)
    dtype = compute_dtype(getattr(x, "dtype", np.float32))
    # The heads' states have the device's room whatever the features' limit:
    # a small max_device_bytes streams the rows, it does not split the heads.
    room = budget if max_device_bytes is None else placement.device_budget(None)
    per_batch = heads_per_batch(d * q + q, cfg.memory, dtype, room)
    chunk = placement.chunk_rows(min(G * L, per_batch), q, chunk_rows)
    problem = prepare(
        parts, q, mesh=mesh, budget=budget, chunk_rows=chunk,
        fit_intercept=bool(fit_intercept), diagonal=bool(np.any(l1 > 0)),
    )  # fmt: skip
    l2_all = np.tile(l2, G) if l2.ndim == 1 else l2.reshape(G * L)
    l1_all = np.tile(l1, G) if l1.ndim == 1 else l1.reshape(G * L)
    group = np.repeat(np.arange(G), L)
    if start is None:
        every_y = np.concatenate([y, *(p.y for p in more)])
        every_w = None if w is None and not more else _weights(parts)
        theta0 = prior_start(problem, every_y, every_w, G * L, bool(fit_intercept))
    else:
        theta0 = params_start(problem, start, l2_all)
    rough = _rough_problem(problem, parts, budget, chunk, min(G * L, per_batch))
    H = G * L
    theta = np.empty((H, d * q + q), problem.dtype)
    f, grad_norm = np.empty(H), np.empty(H)
    iterations, passes = np.empty(H, np.int32), np.empty(H, np.int32)
    converged = np.empty(H, bool)
    if per_batch >= H:  # one batch: every head at once, from its start
        batches, warm = [np.arange(H)], {}
    else:
        level = np.tile(np.arange(L), G)
        order, warm = _batch_order(l2_all, l1_all, group, level, warm=start is None)
        batches = _batches(order, level, per_batch, by_strength=bool(warm))
    solved = np.zeros(H, bool)
    last: tuple[np.ndarray, lbfgs.HeadState] | None = None
    for batch in batches:
        carried = None
        if last is not None and _carries(last[0], batch, warm, l1_all, rough):
            carried = carry(
                problem.rows, problem.basis, last[1],
                sharding.replicate(l2_all[last[0]].astype(problem.dtype), mesh),
                sharding.replicate(l2_all[batch].astype(problem.dtype), mesh), cfg,
            )  # fmt: skip
        last = None
        theta0_batch = theta0[batch]
        for k, head in enumerate(batch):  # on from the last solved head of its set
            before = warm.get(int(head))
            if carried is None and before is not None and solved[before]:
                params = to_params(problem, theta[before][None], l2_all[before][None])
                theta0_batch[k] = params_start(problem, params, l2_all[head][None])[0]
        heads = Heads(l2_all[batch], l1_all[batch], group[batch], count[group[batch]])
        (
            theta[batch], f[batch], iterations[batch], passes[batch],
            converged[batch], grad_norm[batch], state,
        ) = _solve_batch(
            problem, rough, heads, theta0_batch if carried is None else carried,
            cfg, progress, polish, rtol, gtol_norm,
        )  # fmt: skip
        solved[batch] = True
        last = (batch, state)
        del state, carried
    del last
    f, iterations, passes, converged, grad_norm = (
        a.reshape(G, L) for a in (f, iterations, passes, converged, grad_norm)
    )
    params = to_params(problem, theta.reshape(G * L, -1), l2_all)
    W = params.W.reshape(G, L, d, q)
    if kept is not None:  # the empty columns' weights: 0
        W = np.zeros((G * L, len(kept), q), W.dtype)
        columns = np.flatnonzero(kept)
        for head in range(G * L):  # a head at a time: faster than a mask
            W[head, columns] = params.W[head]
        W = W.reshape(G, L, len(kept), q)
    return Solution(
        params=model.Params(W, params.b.reshape(G, L, q)),
        objective=f.astype(np.float64),
        iterations=iterations,
        converged=converged,
        passes=passes,
        grad_norm=grad_norm.astype(np.float64),
    )


def _more_parts(
    more_rows: Sequence[Part], q: int, d: int, G: int, check_input: bool
) -> list[Part]:
    """`solve`'s ``more_rows`` checked: labels int32, weights (m,), and every
    row in each of the G training sets."""
    more = []
    for part in more_rows:
        x, y = part.x, part.y
        if getattr(x, "ndim", 2) != 2 or int(x.shape[1]) != d:
            raise SolveInputError(
                f"more_rows must have x's {d} features, got shape {x.shape}."
            )
        if check_input:
            x, y = validate_features(x, y, num_classes=q, num_features=d, split="train")
        y = np.asarray(jax.device_get(y), np.int32)
        w = checked_weight(part.w, len(y), "train")
        w = np.ones(len(y)) if w is None else w
        more.append(Part(x, y, w, np.ones((len(y), G), bool)))
    return more


def _weights(parts: Sequence[Part]) -> np.ndarray:
    """Every part's weights (None: 1), one after another."""
    return np.concatenate(
        [np.ones(len(p.y)) if p.w is None else np.asarray(p.w) for p in parts]
    )


def _batch_order(
    l2: np.ndarray, l1: np.ndarray, group: np.ndarray, level: np.ndarray, *, warm: bool
) -> tuple[np.ndarray, dict[int, int]]:
    """The order heads are solved in when they come in batches: strongest
    penalty first, a strength (``level``: the column of l2, which holds
    each set's strength ``1 / (C S_g)`` for one C) across the sets at a
    time, and with ``warm``, for each head the head of its set solved just
    before it, whose solution it starts from (scikit-learn's path over C,
    per set)."""
    levels = np.unique(level)
    mean = np.array([np.mean((l2 + l1)[level == k]) for k in levels])
    rank = np.empty(len(levels), np.int64)
    rank[np.argsort(-mean, kind="stable")] = np.arange(len(levels))
    order = np.lexsort((group, rank[np.searchsorted(levels, level)]))
    previous: dict[int, int] = {}
    warm_from: dict[int, int] = {}
    for head in order:
        g = int(group[head])
        if warm and g in previous:
            warm_from[int(head)] = previous[g]
        previous[g] = int(head)
    return order, warm_from


def _batches(
    order: np.ndarray, level: np.ndarray, per_batch: int, *, by_strength: bool
) -> list[np.ndarray]:
    """``order`` cut into batches of at most ``per_batch`` heads. With
    ``by_strength`` (heads going on from the head of their set solved
    before), a batch holds one strength: a head then always starts from the
    solution at the next stronger penalty, which takes a few iterations
    where a start from zero takes many (each batch's pass costs about its
    heads' share: the solver's vectors, not the shared rows)."""
    if not by_strength:
        return np.array_split(order, -(-len(order) // per_batch))
    cuts = np.flatnonzero(np.diff(level[order]) != 0) + 1
    return [
        piece
        for heads in np.split(order, cuts)
        for piece in np.array_split(heads, -(-len(heads) // per_batch))
    ]


def _carries(
    before: np.ndarray,
    batch: np.ndarray,
    warm: dict[int, int],
    l1: np.ndarray,
    rough: Problem | None,
) -> bool:
    """Whether ``batch`` starts from the final states of the batch ``before``
    (`jaxsoft.exact.solver.carry`): each of its heads goes on from the head
    in the same place there, and no head has an L1 term or a float32
    stage."""
    if rough is not None or len(before) != len(batch):
        return False
    if np.any(l1[before] != 0) or np.any(l1[batch] != 0):
        return False
    return all(warm.get(int(h)) == int(b) for h, b in zip(batch, before, strict=True))


def heads_per_batch(size: int, memory: int, dtype: Any, budget: int) -> int:
    """How many heads of ``size`` parameters are solved together: their
    solver states (the L-BFGS memory, 2 ``memory`` vectors, and about 12
    more of the heads' vectors and sums) within half the device budget;
    more heads are solved a batch after another, on the same placed rows."""
    per_head = size * (2 * memory + 12) * np.dtype(dtype).itemsize
    return max(1, (budget // 2) // per_head)


def _solve_batch(
    problem: Problem,
    rough: Problem | None,
    heads: Heads,
    theta0: np.ndarray | lbfgs.HeadState,
    cfg: lbfgs.Settings,
    progress: Callable[[Progress], None] | None,
    polish: tuple[float, int] | None,
    rtol: float,
    gtol_norm: lbfgs.GradNorm,
) -> tuple[Any, ...]:
    """One batch of heads (H,): float32 first where ``rough``, then the
    solve, then the polish; from points (H, P) or from starting states
    (`jaxsoft.exact.solver.carry`'s, which count one evaluation already).
    Returns NumPy (theta (H, P), objective, iterations, passes, converged,
    grad_norm (H,)) and the final states."""
    l2, l1, group, count = heads
    iterations = passes = np.zeros(len(l2), np.int32)
    if isinstance(theta0, lbfgs.HeadState):
        passes = -sharding.to_host(theta0.evaluations)
    elif rough is not None:  # most iterations in float32, then on in float64
        rough_cfg = cfg._replace(rtol=max(cfg.rtol, ROUGH_RTOL))
        state = run(rough, l2, group, count, theta0, rough_cfg, progress, l1)
        theta0 = sharding.to_host(state.theta).astype(problem.dtype)
        iterations = sharding.to_host(state.iterations)
        passes = sharding.to_host(state.evaluations)
        del state
    budget_left = cfg.max_iter - int(iterations.max())
    cfg = cfg._replace(max_iter=max(1, budget_left))
    state = run(problem, l2, group, count, theta0, cfg, progress, l1, going_on=False)
    converged = sharding.to_host(state.converged)
    done = sharding.to_host(state.iterations)
    iterations = iterations + done
    passes = passes + sharding.to_host(state.evaluations)
    budget_left = cfg.max_iter - int(done.max())
    if polish is not None and budget_left > 0:
        limit = int(done.max()) + min(polish[1], budget_left)
        tight = settings(rtol, polish[0], gtol_norm, limit, cfg.memory)
        before = passes - sharding.to_host(state.evaluations)
        state = run(problem, l2, group, count, state, tight, progress, l1)
        iterations = iterations - done + sharding.to_host(state.iterations)
        passes = before + sharding.to_host(state.evaluations)
    return (
        sharding.to_host(state.theta),
        sharding.to_host(state.f),
        iterations,
        passes,
        converged,
        sharding.to_host(state.grad_norm),
        state,
    )
