"""Solving many heads together: one data pass per iteration for every head.

`solve_heads` keeps every head's L-BFGS state (`jaxsoft.probe.lbfgs`) on the
device and loops on the host: gather the heads still running, evaluate all of
them in one pass over the rows (`jaxsoft.probe.passes.grad_pass`), advance
each head. Finished heads stop changing and leave the pass: the running heads
are packed into a batch whose size is the next power of two (so at most
log2(H) + 1 shapes are compiled), which keeps the work proportional to the
heads still running.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsoft.probe import basis as basis_lib
from jaxsoft.probe import lbfgs
from jaxsoft.probe.passes import Rows, grad_pass

__all__ = ["Heads", "Progress", "solve_heads"]


class Heads(NamedTuple):
    """What distinguishes the heads solved together, each (H,).

    Attributes:
      l2: strengths (float32).
      held: the fold each head leaves out (-1: none; it trains on every row).
      count: the number of rows each head trains on (float32).
    """

    l2: jax.Array
    held: jax.Array
    count: jax.Array


class Progress(NamedTuple):
    """Reported to the progress callback after each pass."""

    passes: int
    running: int
    total: int
    iterations: np.ndarray  # (H,)


def _bucket(active: np.ndarray, total: int) -> np.ndarray:
    """``active`` padded (by repeating its last entry) to a power of two <= total."""
    size = min(1 << (len(active) - 1).bit_length(), total)
    return np.concatenate([active, np.full(size - len(active), active[-1])])


@jax.jit
def _prepare(basis, heads: Heads, state: lbfgs.HeadState, idx: jax.Array):
    """Pass coordinates Wt (B, d, q), c (B, q) and held-out folds of ``idx``."""
    sub = jax.tree.map(lambda a: a[idx], state)
    theta = jax.vmap(lbfgs.trial)(sub)
    Wt, c = jax.vmap(basis_lib.to_pass, in_axes=(None, 0, 0))(
        basis, theta, heads.l2[idx]
    )
    return Wt, c, heads.held[idx]


@functools.partial(jax.jit, static_argnums=0)
def _spread(total: int, idx: jax.Array, sums):
    """A pass's sums for the heads in ``idx`` -> sums for all heads (0 elsewhere)."""
    return jax.tree.map(
        lambda a: jnp.zeros((total, *a.shape[1:]), a.dtype).at[idx].set(a), sums
    )


@functools.partial(jax.jit, static_argnames="cfg", donate_argnames="state")
def _update(basis, heads: Heads, state, sums, cfg: lbfgs.Settings):
    """Advances every head with a pass's sums (heads already done stay put)."""

    def one(s, ce, gWt, gc, l2, count):
        theta = lbfgs.trial(s)
        f = ce / count + basis_lib.penalty(basis, theta, l2)
        g = basis_lib.to_solver_grad(basis, theta, gWt / count, gc / count, l2)
        return lbfgs.advance(s, f, g, cfg)

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
      rows: the training rows (with fold indices for cross-validation).
      basis: the change of variables (`jaxsoft.probe.basis`).
      heads: each head's strength, held-out fold and row count.
      theta0: starting points in solver coordinates, (H, P).
      cfg: L-BFGS settings.
      progress: called after every pass.

    Returns:
      The batched `lbfgs.HeadState` (H, ...); ``theta`` holds the solutions.
    """
    state = _init(theta0, cfg.memory)
    total, passes = theta0.shape[0], 0
    while True:
        done = np.asarray(state.done)
        active = np.flatnonzero(~done)
        if active.size == 0:
            return state
        idx = jnp.asarray(_bucket(active, total))
        Wt, c, held = _prepare(basis, heads, state, idx)
        sums = _spread(total, idx, grad_pass(rows, Wt, c, held, basis.st))
        state = _update(basis, heads, state, sums, cfg)
        passes += 1
        if progress is not None:
            progress(Progress(passes, active.size, total, np.asarray(state.iterations)))
