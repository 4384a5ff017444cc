"""Every head's L-BFGS loop as one compiled program.

`solve_heads` keeps every head's L-BFGS state (`jaxsoft.exact.lbfgs`) on the
mesh (replicated). For rows in memory the whole loop runs on the device: a
`jax.lax.while_loop` whose body is one pass over the rows for every head
(`jaxsoft.exact.passes.grad_sums`, a `scan` over the row chunks) followed by
every head's L-BFGS move, with the stopping test inside, so a compiled solve
costs microseconds per iteration, not a host round trip. Heads that are done
stop changing; with more heads than one block (`passes.head_block`), each
pass computes only the blocks of heads still running
(`passes.grad_sums_running`), so the strong penalties of a cross-validation,
done in a few passes, stop costing passes.

Two things bring the host back, every `PASSES_PER_CALL` passes at most:

- a large pass (more than `SHRINK_MIN_LOGITS` logits) with heads already
  done: the running heads are packed into a batch whose size is a power of
  four (at most log4(H) + 2 shapes compiled), which keeps the work within 4x
  of the heads still running;
- a ``progress`` callback, called after each such call.

Streamed rows (features larger than the device budget) come from the host
anyway: one program per chunk, the same chunk function in the same order,
then the same move, so both give the same iterates.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsoft import compiling, sharding
from jaxsoft.exact import basis as basis_lib
from jaxsoft.exact import lbfgs, passes
from jaxsoft.exact.passes import Rows, grad_pass

__all__ = ["Heads", "Progress", "carry", "solve_heads"]


class Heads(NamedTuple):
    """What distinguishes the heads solved together, each (H,).

    Attributes:
      l2: L2 strengths (compute dtype).
      l1: L1 strengths (compute dtype; they need the diagonal basis).
      group: the training set of each head (an index into the rows' sets).
      count: each head's total training weight (compute dtype).
    """

    l2: jax.Array
    l1: jax.Array
    group: jax.Array
    count: jax.Array


class Progress(NamedTuple):
    """Reported to the progress callback after each call of the device loop.

    Attributes:
      passes: data passes so far.
      running: heads not yet done after them.
      total: heads in all.
      iterations: (H,) each head's accepted iterations so far.
    """

    passes: int
    running: int
    total: int
    iterations: np.ndarray


# A pass over fewer logits than this (rows x heads x classes, a few ms on a
# CPU) keeps every head: packing the running heads into a smaller batch costs
# a compilation (about half a second on a CPU) per new shape, worth it only
# for large passes.
SHRINK_MIN_LOGITS = 1 << 22

# Passes per call of the device loop when the host looks in between (to pack
# the running heads, or to report progress).
PASSES_PER_CALL = 16


def _bucket_size(running: int, total: int) -> int:
    """The smallest power of four >= ``running``, at most ``total``."""
    size = 1
    while size < running:
        size *= 4
    return min(size, total)


def _bucket(active: np.ndarray, size: int) -> np.ndarray:
    """``active`` padded (by repeating its last entry) to ``size`` heads."""
    return np.concatenate([active, np.full(size - len(active), active[-1])])


def _split_settings(cfg: lbfgs.Settings) -> tuple[lbfgs.Settings, tuple]:
    """(the settings that shape the program, the stopping limits as values).

    The limits (rtol, gtol, max_iter) are traced values, so that fits
    differing only in ``tol`` or ``max_iter`` (a grid search, scikit-learn's
    checks, the float64 polish) share one compiled program.
    """
    limits = (float(cfg.rtol), float(cfg.gtol), int(cfg.max_iter))
    return cfg._replace(rtol=0.0, gtol=0.0, max_iter=0), limits


def _l1_weights(basis, l1, l2, state, owlqn: bool) -> jax.Array | None:
    """One head's L1 weights on its coordinates (P,); None without OWL-QN
    (no head of the solve has an L1 term)."""
    if not owlqn:
        return None
    q = state.theta.shape[-1] // (basis.lam.shape[0] + 1)
    return basis_lib.l1_weights(basis, l1, l2, q)


def _trial_heads(basis, heads: Heads, state: lbfgs.HeadState, owlqn: bool):
    """Every head's pass coordinates at its trial point: W (H, d, q), c (H, q)."""

    def one(s, l2, l1):
        theta = lbfgs.trial(s, _l1_weights(basis, l1, l2, s, owlqn))
        return basis_lib.to_pass(basis, theta, l2)

    return jax.vmap(one)(state, heads.l2, heads.l1)


def _move(basis, heads: Heads, state, sums, cfg: lbfgs.Settings):
    """Every head's L-BFGS (OWL-QN) move with a pass's sums (heads done stay
    put)."""

    def one(s, ce, gW, gc, l2, l1, count):
        l1w = _l1_weights(basis, l1, l2, s, cfg.owlqn)
        theta = lbfgs.trial(s, l1w)
        gW, gc = gW / count, gc / count
        f = ce / count + basis_lib.penalty(basis, theta, l2)
        if cfg.owlqn:
            f = f + jnp.sum(l1w * jnp.abs(theta))
        g = basis_lib.to_solver_grad(basis, theta, gW, gc, l2)
        l1_raw = l1 if cfg.owlqn else None
        largest, l2_norm = basis_lib.raw_grad_norms(basis, theta, gW, gc, l2, l1_raw)
        norm = largest if cfg.gtol_norm == "max" else l2_norm
        return lbfgs.advance(s, f, g, norm, l1w, cfg)

    return jax.vmap(one)(state, *sums, heads.l2, heads.l1, heads.count)


def _with_limits(shape_cfg: lbfgs.Settings, limits) -> lbfgs.Settings:
    rtol, gtol, max_iter = limits
    return shape_cfg._replace(rtol=rtol, gtol=gtol, max_iter=max_iter)


def _run_in_memory(
    basis,
    heads,
    state,
    stacked,
    shift,
    limits,
    max_passes,
    going_on,
    *,
    shape_cfg,
    centred,
):
    """Up to ``max_passes`` passes and moves of every head, on the device;
    stops early once every head is done. With ``going_on`` (a traced bool),
    ``state`` is an earlier run's end, taken on with these limits
    (`_going_on`). Returns (state, passes run)."""
    cfg = _with_limits(shape_cfg, limits)
    state = jax.tree.map(
        lambda new, old: jnp.where(going_on, new, old), _going_on(state), state
    )

    def running(carry):
        state, k = carry
        return (k < max_passes) & ~jnp.all(state.done)

    H, P = state.theta.shape
    block = passes.head_block(H, P // (basis.lam.shape[0] + 1))

    def one_pass(carry):
        state, k = carry
        W, c = _trial_heads(basis, heads, state, cfg.owlqn)
        if block is None:
            sums = passes.grad_sums(stacked, W, c, heads.group, shift, centred=centred)
        else:  # the finished heads' blocks skipped
            sums = passes.grad_sums_running(
                stacked, W, c, heads.group, shift, ~state.done,
                centred=centred, block=block,
            )  # fmt: skip
        return _move(basis, heads, state, sums, cfg), k + 1

    return jax.lax.while_loop(running, one_pass, (state, jnp.asarray(0, jnp.int32)))


def _carry_one(basis, s: lbfgs.HeadState, l2, l2_new, cfg: lbfgs.Settings):
    """One head's final state at strength ``l2`` as the starting state of the
    same training set at ``l2_new``, with no data pass: the same (W, b) in
    the new coordinates, with its objective and gradient there (the
    cross-entropy's part does not depend on the strength, the penalty's is
    known), as the first pass from that point would leave it (an empty
    L-BFGS memory, whose buffers are reused). Heads with no L1 term only.

    The memory is not carried over: rescaled to the new coordinates it took
    one pass fewer on bench_practitioner's text_cv, but more on a small
    problem solved to gtol 1e-10, and rewriting it costs about a pass.
    """
    D, dc = basis_lib.scales(basis, l2)
    Dn, _ = basis_lib.scales(basis, l2_new)
    q = s.theta.shape[-1] // (D.shape[0] + 1)

    def flat(on_weights, on_intercept):  # per coordinate (P,), U's then c''s
        weights = jnp.broadcast_to(on_weights[:, None], (D.shape[0], q)).ravel()
        return jnp.concatenate([weights, jnp.full((q,), on_intercept, D.dtype)])

    theta = flat(D / Dn, 1.0) * s.theta  # the same (W, b): U' = D U / D'
    # the gradient: the cross-entropy's part, D' (its W part), and the
    # new penalty's, l2' D' W = l2' D' D U
    ce = s.g / flat(D, 1.0) - flat(l2 * D, 0.0) * s.theta
    g = flat(Dn, 1.0) * ce + flat(l2_new * Dn * D, 0.0) * s.theta
    f = s.f + 0.5 * (l2_new - l2) * jnp.sum(jnp.square(flat(D, 0.0) * s.theta))
    # the raw gradient's norm there, for gtol (the pass's gW, gc: `_move`)
    ce_W, gc = basis_lib.split(basis, ce)
    b_grad = jnp.where(basis.intercept > 0, gc / (basis.intercept * dc), 0.0)
    dW = ce_W if basis.V is None else basis.V @ ce_W
    gW = dW - jnp.outer(basis.shift - basis.mu, b_grad)
    zero = jnp.zeros((), l2.dtype)
    largest, l2_norm = basis_lib.raw_grad_norms(basis, theta, gW, b_grad, l2_new, zero)
    norm = largest if cfg.gtol_norm == "max" else l2_norm
    start = s._replace(
        theta=theta, f=f, g=g, rho=jnp.zeros_like(s.rho),
        gamma=jnp.ones_like(s.gamma), step=jnp.zeros_like(s.step),
        orthant=jnp.sign(theta), iterations=jnp.zeros_like(s.iterations),
        evaluations=jnp.zeros_like(s.evaluations),
        backtracks=jnp.zeros_like(s.backtracks),
        done=jnp.zeros_like(s.done), converged=jnp.zeros_like(s.converged),
    )  # fmt: skip
    l1w = jnp.zeros_like(theta)
    moved = jnp.zeros_like(theta)
    # as the first pass would: direction, gap, stopping test (empty slots,
    # rho 0, take no part in the direction whatever S and Y hold)
    new = lbfgs._accept(start, theta, moved, f, g, norm, l1w, cfg, write=False)
    return new._replace(evaluations=jnp.ones_like(s.evaluations))


def _carry(basis, state, l2, l2_new, limits, *, shape_cfg):
    cfg = _with_limits(shape_cfg, limits)
    one = functools.partial(_carry_one, cfg=cfg)
    return jax.vmap(one, in_axes=(None, 0, 0, 0))(basis, state, l2, l2_new)


def carry(
    rows: Rows,
    basis: basis_lib.Basis,
    state: lbfgs.HeadState,
    l2: jax.Array,
    l2_new: jax.Array,
    cfg: lbfgs.Settings,
) -> lbfgs.HeadState:
    """Final states (H,) of heads with L2 strengths ``l2`` (no L1 term) as
    the starting states of the same heads at ``l2_new``, without a data
    pass (`_carry_one`): the next strength of scikit-learn's path over C
    starts from the point where the last one ended, already evaluated.
    ``state`` is consumed (its buffers reused). Pass the result to
    `solve_heads` with ``going_on=False``; its heads count one evaluation
    already (``evaluations`` 1)."""
    shape_cfg, limits = _split_settings(cfg)
    program = compiling.jit(
        _carry,
        rows.mesh,
        static_argnames=("shape_cfg",),
        donate_argnames=("state",),
    )
    return program(basis, state, l2, l2_new, limits, shape_cfg=shape_cfg)


def _move_limits(basis, heads, state, sums, limits, shape_cfg):
    return _move(basis, heads, state, sums, _with_limits(shape_cfg, limits))


def _take(tree, idx):
    return jax.tree.map(lambda a: a[idx], tree)


def _put(state, sub, idx):
    return jax.tree.map(lambda a, b: a.at[idx].set(b), state, sub)


def _quick(rows: Rows, heads: Heads, state: lbfgs.HeadState) -> bool:
    """Whether the solve's programs are small enough to compile quickly."""
    H, q = heads.l2.shape[0], state.theta.shape[1] // (rows.d + 1)
    return compiling.quick(rows.n * H * q * rows.d)


def _streamed_pass(rows, basis, heads, state, limits, shape_cfg):
    """One pass and move over streamed rows (one program per chunk), compiled
    with the options of the in-memory loop: the same sums and moves."""
    mesh, quick = rows.mesh, _quick(rows, heads, state)
    trial_heads = compiling.jit(_trial_heads, mesh, quick=quick, static_argnums=(3,))
    W, c = trial_heads(basis, heads, state, shape_cfg.owlqn)
    sums = grad_pass(rows, W, c, heads.group, quick=quick)
    move = compiling.jit(
        _move_limits,
        mesh,
        quick=quick,
        static_argnames=("shape_cfg",),
        donate_argnames=("state",),
    )
    return move(basis, heads, state, sums, limits, shape_cfg)


def _run(
    rows: Rows,
    basis,
    heads,
    state,
    limits,
    shape_cfg,
    max_passes: int,
    going_on: bool = False,
):
    """(state, passes run) after at most ``max_passes`` passes of ``heads``
    (``going_on``: from an earlier run's end, `_going_on`)."""
    if rows.stacked is None:
        if going_on:
            state = compiling.jit(_going_on, rows.mesh, quick=True)(state)
        return _streamed_pass(rows, basis, heads, state, limits, shape_cfg), 1
    state, ran = compiling.call(
        _run_in_memory,
        rows.mesh,
        basis,
        heads,
        state,
        rows.stacked,
        rows.shift,
        limits,
        np.int32(max_passes),
        np.bool_(going_on),
        quick=_quick(rows, heads, state),
        static={"shape_cfg": shape_cfg, "centred": rows.in_memory_centred},
        donate=(2,),
    )
    return state, int(ran)


def _pass_bound(cfg: lbfgs.Settings) -> int:
    """Passes after which every head is done (each pass accepts a step or
    backtracks, and a head stops after max_backtracks in a row)."""
    return min(int(cfg.max_iter) * (cfg.max_backtracks + 1) + 1, 2**31 - 1)


def _going_on(state: lbfgs.HeadState) -> lbfgs.HeadState:
    """An earlier run's final states, to go on with tighter limits: heads
    that stopped converged run again from their point, along the direction
    already computed there (heads that stalled stay done)."""
    again = state.converged
    return state._replace(
        done=state.done & ~again,
        converged=jnp.zeros_like(again),
        step=jnp.where(again, jnp.ones_like(state.step), state.step),
    )


def solve_heads(
    rows: Rows,
    basis: basis_lib.Basis,
    heads: Heads,
    start: np.ndarray | lbfgs.HeadState,
    cfg: lbfgs.Settings,
    progress: Callable[[Progress], None] | None = None,
    *,
    going_on: bool | None = None,
) -> lbfgs.HeadState:
    """Solves every head from ``start``; returns the final states.

    Args:
      rows: the training rows (with their sets, for cross-validation).
      basis: the change of variables (`jaxsoft.exact.basis`), replicated
        (or NumPy).
      heads: each head's strength, training set and total weight (NumPy,
        or on the mesh).
      start: starting points in solver coordinates, (H, P) (NumPy), or an
        earlier run's final states to go on from (`_going_on`).
      cfg: L-BFGS settings.
      progress: called after each call of the device loop (at most
        `PASSES_PER_CALL` passes apart).
      going_on: whether states given as ``start`` are gone on from
        (`_going_on`); False takes them as they are (`carry`'s). None: True
        for states.

    Returns:
      The batched `lbfgs.HeadState` (H, ...); ``theta`` holds the solutions.
    """
    if going_on is None:
        going_on = isinstance(start, lbfgs.HeadState)
    state = start
    if not isinstance(start, lbfgs.HeadState):
        state = lbfgs.init_host(start, cfg.memory)
    shape_cfg, limits = _split_settings(cfg)
    # no head with an L1 term: OWL-QN's operations left out (the same iterates)
    owlqn = shape_cfg.owlqn and bool(np.any(sharding.to_host(heads.l1) > 0))
    shape_cfg = shape_cfg._replace(owlqn=owlqn)
    total, P = state.theta.shape
    logits_per_head = rows.n * (P // (rows.d + 1))
    size = total
    may_shrink = total > 1 and total * logits_per_head >= SHRINK_MIN_LOGITS
    looks = may_shrink or progress is not None or rows.stacked is None
    if rows.stacked is None or may_shrink:  # programs of `compiling.jit` too
        basis, heads, state = sharding.replicate((basis, heads, state), rows.mesh)
    elif looks:  # several calls: the basis placed once, not copied a call
        basis = sharding.replicate(basis, rows.mesh)
    # else the device loop's `compiling.call` takes NumPy as it is
    per_call = PASSES_PER_CALL if looks else _pass_bound(cfg)
    passes_done = 0
    while True:
        if passes_done:  # the first call needs no look: every head runs
            done = sharding.to_host(state.done)
            active = np.flatnonzero(~done)
            if active.size == 0:
                return state
            if may_shrink:
                size = min(size, _bucket_size(active.size, total))
        if size == total:
            state, ran = _run(
                rows, basis, heads, state, limits, shape_cfg, per_call, going_on
            )
            going_on = False
        else:
            idx = sharding.replicate(_bucket(active, size).astype(np.int32), rows.mesh)
            take = compiling.jit(_take, rows.mesh)
            sub_heads, sub = take((heads, state), idx)
            sub, ran = _run(rows, basis, sub_heads, sub, limits, shape_cfg, per_call)
            state = compiling.jit(_put, rows.mesh, donate_argnums=(0,))(state, sub, idx)
        passes_done += ran
        if progress is not None:
            iterations = sharding.to_host(state.iterations)
            running = int(np.sum(~sharding.to_host(state.done)))
            progress(Progress(passes_done, running, total, iterations))
        if not looks:
            return state
