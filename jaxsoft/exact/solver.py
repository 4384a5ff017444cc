"""Solving many heads together: one data pass per iteration for every head.

`solve_heads` keeps every head's L-BFGS state (`jaxsoft.exact.lbfgs`) on the
mesh (replicated) and loops on the host: gather the heads still running,
evaluate all of them in one pass over the rows
(`jaxsoft.exact.passes.grad_pass`), advance each head. Finished heads stop
changing and leave the pass: the running heads are packed into a batch
whose size is a power of four (so at most log4(H) + 2 shapes are compiled),
which keeps the work within 4x of the heads still running.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsoft import sharding
from jaxsoft.exact import basis as basis_lib
from jaxsoft.exact import lbfgs, passes
from jaxsoft.exact.passes import Rows, grad_pass

__all__ = ["Heads", "Progress", "solve_heads"]


class Heads(NamedTuple):
    """What distinguishes the heads solved together, each (H,).

    Attributes:
      l2: strengths (compute dtype).
      group: the training set of each head (an index into the rows' sets).
      count: each head's total training weight (compute dtype).
    """

    l2: jax.Array
    group: jax.Array
    count: jax.Array


class Progress(NamedTuple):
    """Reported to the progress callback after each pass."""

    passes: int
    running: int
    total: int
    iterations: np.ndarray  # (H,)


# A pass computes only the heads still running, padded to a power of four
# (at most log4(H) + 2 shapes, each compiled once); each new shape costs a
# compilation (about 0.5 s on a CPU), which is worth it only when a pass is
# large: a pass of fewer logits than this (rows x heads x classes, a few ms on
# a CPU) is not made smaller (heads already done stay put).
SHRINK_MIN_LOGITS = 1 << 22


def _bucket_size(running: int, total: int) -> int:
    """The smallest power of four >= ``running``, at most ``total``."""
    size = 1
    while size < running:
        size *= 4
    return min(size, total)


def _bucket(active: np.ndarray, size: int) -> np.ndarray:
    """``active`` padded (by repeating its last entry) to ``size`` heads."""
    return np.concatenate([active, np.full(size - len(active), active[-1])])


def _next_size(active: int, current: int, total: int, logits_per_head: int) -> int:
    """The pass's head count: ``current``, or a smaller bucket once the
    current pass is large enough for the saving to repay a compilation."""
    if current * logits_per_head < SHRINK_MIN_LOGITS:
        return current
    return min(current, _bucket_size(active, total))


def _prepare_heads(basis, heads: Heads, state: lbfgs.HeadState, idx: jax.Array):
    """Pass coordinates W (B, d, q), c_s (B, q) and training sets of ``idx``."""
    sub = jax.tree.map(lambda a: a[idx], state)
    theta = jax.vmap(lbfgs.trial)(sub)
    W, c = jax.vmap(basis_lib.to_pass, in_axes=(None, 0, 0))(
        basis, theta, heads.l2[idx]
    )
    return W, c, heads.group[idx]


def _spread_sums(total: int, idx: jax.Array, sums):
    """A pass's sums for the heads in ``idx`` -> sums for all heads (0 elsewhere)."""
    if idx.shape[0] == total:
        return sums  # every head: idx is 0, 1, ..., total - 1
    return jax.tree.map(
        lambda a: jnp.zeros((total, *a.shape[1:]), a.dtype).at[idx].set(a), sums
    )


_prepare = jax.jit(_prepare_heads)
_spread = jax.jit(_spread_sums, static_argnums=0)


@functools.partial(jax.jit, static_argnames=("total", "centred"))
def _in_memory_pass(basis, heads, state, idx, stacked, shift, *, total, centred):
    """Heads ``idx``'s pass over rows in memory as one program: their trial
    points, the sums over every chunk, spread to all ``total`` heads."""
    W, c, group = _prepare_heads(basis, heads, state, idx)
    sums = passes.grad_sums(stacked, W, c, group, shift, centred=centred)
    return _spread_sums(total, idx, sums)


def _pass(rows: Rows, basis, heads: Heads, state, idx: jax.Array, total: int):
    """The sums (H,), (H, d, q), (H, q) of heads ``idx`` (0 for the others)."""
    if rows.stacked is not None:
        return _in_memory_pass(
            basis,
            heads,
            state,
            idx,
            rows.stacked,
            rows.shift,
            total=total,
            centred=rows.in_memory_centred,
        )
    W, c, group = _prepare(basis, heads, state, idx)
    return _spread(total, idx, grad_pass(rows, W, c, group))


def _split_settings(cfg: lbfgs.Settings) -> tuple[lbfgs.Settings, tuple]:
    """(the settings that shape the program, the stopping limits as values).

    The limits (rtol, gtol, max_iter) are passed to `_update` as traced
    values, so that fits differing only in ``tol`` or ``max_iter`` (a grid
    search, scikit-learn's checks) share one compiled update.
    """
    limits = (float(cfg.rtol), float(cfg.gtol), int(cfg.max_iter))
    return cfg._replace(rtol=0.0, gtol=0.0, max_iter=0), limits


@functools.partial(jax.jit, static_argnames="shape_cfg", donate_argnames="state")
def _update(basis, heads: Heads, state, sums, limits, shape_cfg: lbfgs.Settings):
    """Advances every head with a pass's sums (heads already done stay put)."""
    rtol, gtol, max_iter = limits
    cfg = shape_cfg._replace(rtol=rtol, gtol=gtol, max_iter=max_iter)

    def one(s, ce, gW, gc, l2, count):
        theta = lbfgs.trial(s)
        gW, gc = gW / count, gc / count
        f = ce / count + basis_lib.penalty(basis, theta, l2)
        g = basis_lib.to_solver_grad(basis, theta, gW, gc, l2)
        largest, l2_norm = basis_lib.raw_grad_norms(basis, theta, gW, gc, l2)
        norm = largest if cfg.gtol_norm == "max" else l2_norm
        return lbfgs.advance(s, f, g, norm, cfg)

    return jax.vmap(one)(state, *sums, heads.l2, heads.count)


@functools.partial(jax.jit, static_argnums=1)
def _init(theta0: jax.Array, memory: int) -> lbfgs.HeadState:
    return jax.vmap(functools.partial(lbfgs.init, memory=memory))(theta0)


def solve_heads(
    rows: Rows,
    basis: basis_lib.Basis,
    heads: Heads,
    theta0: jax.Array,
    cfg: lbfgs.Settings,
    progress: Callable[[Progress], None] | None = None,
) -> lbfgs.HeadState:
    """Solves every head from ``theta0`` (H, P); returns the final states.

    Args:
      rows: the training rows (with their sets, for cross-validation).
      basis: the change of variables (`jaxsoft.exact.basis`), replicated.
      heads: each head's strength, training set and total weight.
      theta0: starting points in solver coordinates, (H, P), replicated.
      cfg: L-BFGS settings.
      progress: called after every pass.

    Returns:
      The batched `lbfgs.HeadState` (H, ...); ``theta`` holds the solutions.
    """
    state = _init(theta0, cfg.memory)
    shape_cfg, limits = _split_settings(cfg)
    total, passes, size = theta0.shape[0], 0, theta0.shape[0]
    logits_per_head = rows.n * (theta0.shape[1] // (rows.d + 1))
    while True:
        done = sharding.to_host(state.done)
        active = np.flatnonzero(~done)
        if active.size == 0:
            return state
        size = _next_size(active.size, size, total, logits_per_head)
        running = np.arange(total) if size == total else _bucket(active, size)
        idx = sharding.replicate(running.astype(np.int32), rows.mesh)
        sums = _pass(rows, basis, heads, state, idx, total)
        state = _update(basis, heads, state, sums, limits, shape_cfg)
        passes += 1
        if progress is not None:
            iterations = sharding.to_host(state.iterations)
            progress(Progress(passes, active.size, total, iterations))
