"""Solving many heads together: one data pass per iteration for every head.

`solve_heads` keeps every head's L-BFGS state (`jaxsoft.probe.lbfgs`) on the
mesh (replicated) and loops on the host: gather the heads still running,
evaluate all of them in one pass over the rows
(`jaxsoft.probe.passes.grad_pass`), advance each head. Finished heads stop
changing and leave the pass: the running heads are packed into a batch
whose size is the next power of two (so at most log2(H) + 1 shapes are
compiled), which keeps the work proportional to the heads still running.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsoft import sharding
from jaxsoft.probe import basis as basis_lib
from jaxsoft.probe import lbfgs
from jaxsoft.probe.passes import Rows, grad_pass

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


# A pass computes only the heads still running, padded to a power of two;
# each new count costs a compilation, which is worth it only when a pass is
# large: below this many logits per pass (rows x heads x classes, a few ms on
# a CPU), every pass computes every head (heads already done stay put).
SHRINK_MIN_LOGITS = 1 << 22


def _bucket(active: np.ndarray, total: int) -> np.ndarray:
    """``active`` padded (by repeating its last entry) to a power of two <= total."""
    size = min(1 << (len(active) - 1).bit_length(), total)
    return np.concatenate([active, np.full(size - len(active), active[-1])])


@jax.jit
def _prepare(basis, heads: Heads, state: lbfgs.HeadState, idx: jax.Array):
    """Pass coordinates W (B, d, q), c_s (B, q) and training sets of ``idx``."""
    sub = jax.tree.map(lambda a: a[idx], state)
    theta = jax.vmap(lbfgs.trial)(sub)
    W, c = jax.vmap(basis_lib.to_pass, in_axes=(None, 0, 0))(
        basis, theta, heads.l2[idx]
    )
    return W, c, heads.group[idx]


@functools.partial(jax.jit, static_argnums=0)
def _spread(total: int, idx: jax.Array, sums):
    """A pass's sums for the heads in ``idx`` -> sums for all heads (0 elsewhere)."""
    return jax.tree.map(
        lambda a: jnp.zeros((total, *a.shape[1:]), a.dtype).at[idx].set(a), sums
    )


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
      basis: the change of variables (`jaxsoft.probe.basis`), replicated.
      heads: each head's strength, training set and total weight.
      theta0: starting points in solver coordinates, (H, P), replicated.
      cfg: L-BFGS settings.
      progress: called after every pass.

    Returns:
      The batched `lbfgs.HeadState` (H, ...); ``theta`` holds the solutions.
    """
    state = _init(theta0, cfg.memory)
    shape_cfg, limits = _split_settings(cfg)
    total, passes = theta0.shape[0], 0
    num_classes = theta0.shape[1] // (rows.d + 1)
    shrink = rows.n * total * num_classes >= SHRINK_MIN_LOGITS
    while True:
        done = sharding.to_host(state.done)
        active = np.flatnonzero(~done)
        if active.size == 0:
            return state
        running = _bucket(active, total) if shrink else np.arange(total)
        idx = sharding.replicate(running.astype(np.int32), rows.mesh)
        W, c, group = _prepare(basis, heads, state, idx)
        sums = grad_pass(rows, W, c, group)
        if shrink:
            sums = _spread(total, idx, sums)
        state = _update(basis, heads, state, sums, limits, shape_cfg)
        passes += 1
        if progress is not None:
            iterations = sharding.to_host(state.iterations)
            progress(Progress(passes, active.size, total, iterations))
