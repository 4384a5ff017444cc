"""Heads solved a batch after another, when their states do not fit together.

`heads_per_batch` says how many heads' solver states fit in half the device
budget. Beyond that, `batch_order` and `split_batches` order the heads
strongest penalty first, a strength across the training sets a batch, each
head going on from its set's solution at the strength before
(scikit-learn's path over C); `carries` says when a batch can start from the
final states of the batch before (`jaxsoft.exact.solver.carry`), and
`solve_batch` solves one batch: the float32 stage where there is one, the
solve, the polish.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jaxsoft import sharding
from jaxsoft.exact import lbfgs
from jaxsoft.exact.problem import ROUGH_RTOL, Problem, run, settings
from jaxsoft.exact.solver import Heads, Progress

__all__ = [
    "batch_order",
    "carries",
    "heads_per_batch",
    "solve_batch",
    "split_batches",
]


def batch_order(
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


def split_batches(
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


def carries(
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


def solve_batch(
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
