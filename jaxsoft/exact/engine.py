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

`solve` checks its inputs, prepares the problem (`jaxsoft.exact.problem`:
the rows placed once, the basis), solves the heads together or a batch after
another (`jaxsoft.exact.batching`), and maps the result back to `Params`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from jaxsoft import model, sharding
from jaxsoft.exact import lbfgs, placement, sparse_rows
from jaxsoft.exact.batching import (
    batch_order,
    carries,
    heads_per_batch,
    solve_batch,
    split_batches,
)
from jaxsoft.exact.inputs import (
    SolveInputError,
    check_l2,
    checked_sets,
    checked_weight,
    default_num_classes,
    validate_features,
)
from jaxsoft.exact.passes import Part, compute_dtype
from jaxsoft.exact.problem import (
    params_start,
    prepare,
    prior_start,
    rough_problem,
    settings,
    to_params,
)
from jaxsoft.exact.solver import Heads, Progress, carry

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
    rough = rough_problem(problem, parts, budget, chunk, min(G * L, per_batch))
    H = G * L
    theta = np.empty((H, d * q + q), problem.dtype)
    f, grad_norm = np.empty(H), np.empty(H)
    iterations, passes = np.empty(H, np.int32), np.empty(H, np.int32)
    converged = np.empty(H, bool)
    if per_batch >= H:  # one batch: every head at once, from its start
        batches, warm = [np.arange(H)], {}
    else:
        level = np.tile(np.arange(L), G)
        order, warm = batch_order(l2_all, l1_all, group, level, warm=start is None)
        batches = split_batches(order, level, per_batch, by_strength=bool(warm))
    solved = np.zeros(H, bool)
    last: tuple[np.ndarray, lbfgs.HeadState] | None = None
    for batch in batches:
        carried = None
        if last is not None and carries(last[0], batch, warm, l1_all, rough):
            carried = carry(
                problem.rows, sharding.replicate(problem.basis, mesh), last[1],
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
        ) = solve_batch(
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
