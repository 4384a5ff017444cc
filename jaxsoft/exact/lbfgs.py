"""L-BFGS and OWL-QN for one head as a state machine driven by data passes.

The solver never calls the objective itself: each data pass evaluates every
head at its pending trial point ``theta + step * direction``, and `advance`
turns that value and gradient into the next trial point. A head either
accepts its trial (an L-BFGS iteration: memory update, new direction, step 1)
or backtracks (a smaller step on the same direction), so each pass is useful
to every head, with no line search running in lockstep and no `lax.cond`
evaluated on both sides under `vmap`.

Acceptance is Armijo's condition, or the approximate Wolfe conditions of
Hager and Zhang (the objective has not risen beyond float32 rounding and the
slope has dropped), which keep accepting good steps where float32 can no
longer resolve the objective's decrease.

A head stops when its estimated gap to the optimum, half the L-BFGS Newton
decrement ``-g^T d / 2`` (d = -H g, H the inverse-Hessian estimate), is at
most ``rtol * |f|``: convergence judged by the objective, not by a gradient
norm that float32 cannot bring below ~1e-6. It also stops, where ``gtol``
is set, when the gradient w.r.t. the raw parameters is at most ``gtol``
(its largest entry, scikit-learn's test, or its 2-norm).

L1 penalties (``sum_i l1w_i |theta_i|``, weights ``l1w`` (P,) >= 0 per
coordinate, 0 where a coordinate is not penalised) are handled by OWL-QN
(Andrew and Gao, 2007, "Scalable training of L1-regularized log-linear
models"): the memory is built from the smooth part's gradients, the
direction is the two-loop recursion applied to the pseudo-gradient (the
minimum-norm subgradient) and kept to its signs, every trial point is
projected onto the orthant of the accepted point (a coordinate that would
cross zero stops at zero: the exact zeros of the optimum), and Armijo's
condition uses the pseudo-gradient's slope along the projected step. With
``l1w = 0`` every step is plain L-BFGS, and with ``l1w`` None (no head of
a solve has an L1 term: ``Settings.owlqn`` False) it is computed without
OWL-QN's operations: the same iterates from a smaller program.

The state takes the dtype of the starting point: float32, or float64 when
JAX's x64 mode is on.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["GradNorm", "HeadState", "Settings", "advance", "init_host"]


GradNorm = Literal["max", "l2"]
"""The norm of a gradient test: its largest entry ("max", scikit-learn's
``tol``) or its Euclidean norm ("l2")."""


class Settings(NamedTuple):
    """Solver settings (static)."""

    rtol: float = 1e-6  # stop when the estimated gap <= rtol * |f|
    max_iter: int = 1000  # accepted iterations per head
    memory: int = 10
    gtol: float = 0.0  # or when the raw gradient's norm <= gtol (0: never)
    gtol_norm: GradNorm = "max"  # that norm: "max" (largest entry) or "l2"
    armijo: float = 1e-4
    flat_rtol: float | None = None  # approximate Wolfe: f may rise by this,
    # relative (None: 8 x the dtype's epsilon, 1e-6 in float32)
    flat_slope: float = 0.8  # ... when the slope is at most this x |initial slope|
    max_backtracks: int = 30
    owlqn: bool = True  # False: no head has an L1 term (``l1w`` is None):
    # OWL-QN's pseudo-gradient, projections and signs are left out of the
    # program, which gives the same iterates with fewer operations


class HeadState(NamedTuple):
    """One head's solver state; batched with a leading (H,) axis."""

    theta: jax.Array  # (P,) accepted point
    f: jax.Array  # objective at theta (with the L1 term)
    g: jax.Array  # (P,) gradient of the smooth part at theta
    direction: jax.Array  # (P,)
    step: jax.Array  # the pending trial is theta + step * direction (projected)
    orthant: jax.Array  # (P,) signs the trial keeps where L1 applies (0: stays 0)
    S: jax.Array  # (m, P) memory of steps, newest at index `newest`
    Y: jax.Array  # (m, P) memory of gradient changes
    rho: jax.Array  # (m,) 1 / s^T y; 0 marks an empty slot
    newest: jax.Array  # int
    gamma: jax.Array  # initial inverse-Hessian scale
    iterations: jax.Array  # accepted iterations (int)
    evaluations: jax.Array  # data passes used (int)
    backtracks: jax.Array  # consecutive rejected trials (int)
    gap: jax.Array  # estimated objective gap at theta
    grad_norm: jax.Array  # the raw gradient's norm at theta (Settings.gtol_norm)
    done: jax.Array  # bool
    converged: jax.Array  # bool


def init_host(theta: Any, memory: int) -> HeadState:
    """The state of every head of ``theta`` (H, P) before its first pass,
    whose trial point is ``theta``: built in NumPy on the host (nothing to
    compile), with a leading (H,) axis."""
    theta = np.asarray(jax.device_get(theta))
    H, P = theta.shape
    dt, i32 = theta.dtype, np.int32

    def full(value, dtype, *shape):  # zeros untouched until copied (calloc)
        if value == 0:
            return np.zeros((H, *shape), dtype)
        return np.full((H, *shape), value, dtype)

    return HeadState(
        theta=theta,
        f=full(np.inf, dt),
        g=full(0, dt, P),
        direction=full(0, dt, P),
        step=full(0, dt),
        orthant=np.sign(theta),
        S=full(0, dt, memory, P),
        Y=full(0, dt, memory, P),
        rho=full(0, dt, memory),
        newest=full(memory - 1, i32),
        gamma=full(1, dt),
        iterations=full(0, i32),
        evaluations=full(0, i32),
        backtracks=full(0, i32),
        gap=full(np.inf, dt),
        grad_norm=full(np.inf, dt),
        done=full(False, bool),
        converged=full(False, bool),
    )


def trial(state: HeadState, l1w: jax.Array | None) -> jax.Array:
    """The point the next pass evaluates for this head: the step, with the
    coordinates under an L1 penalty (``l1w > 0``) that leave their orthant
    set to 0 (``l1w`` None: no L1 penalty)."""
    point = state.theta + state.step * state.direction
    if l1w is None:
        return point
    kept = (l1w <= 0) | (point * state.orthant > 0)
    return jnp.where(kept, point, jnp.zeros_like(point))


def pseudo_gradient(theta: jax.Array, g: jax.Array, l1w: jax.Array | None) -> jax.Array:
    """The minimum-norm subgradient of ``f + sum l1w |theta|`` (P,), from the
    smooth part's gradient ``g``: ``g + l1w sign(theta)`` off zero, and at
    zero ``g`` shrunk towards 0 by ``l1w`` (0 where ``|g| <= l1w``); ``g``
    itself where ``l1w`` is None."""
    if l1w is None:
        return g
    at_zero = jnp.sign(g) * jnp.maximum(jnp.abs(g) - l1w, 0.0)
    return jnp.where(theta != 0, g + l1w * jnp.sign(theta), at_zero)


def _two_loop(g, S, Y, rho, newest, gamma) -> jax.Array:
    """-H g by the two-loop recursion over the ring buffer (empty slots: rho 0)."""
    order = (newest - jnp.arange(S.shape[0])) % S.shape[0]  # newest first

    def backward(q, j):
        a = rho[j] * jnp.vdot(S[j], q)
        return q - a * Y[j], a

    q, alphas = jax.lax.scan(backward, g, order)

    def forward(r, j_a):
        j, a = j_a
        beta = rho[j] * jnp.vdot(Y[j], r)
        return r + (a - beta) * S[j], None

    r, _ = jax.lax.scan(forward, gamma * q, (order[::-1], alphas[::-1]))
    return -r


def _cubic_step(f0, d0, ft, dt, t) -> jax.Array:
    """The minimiser on [0, t] of the cubic through (0, f0, d0), (t, ft, dt),
    kept within [0.1 t, 0.5 t] (halving where the fit is not usable)."""
    d1 = d0 + dt - 3.0 * (f0 - ft) / (0.0 - t)
    disc = d1 * d1 - d0 * dt
    d2 = jnp.sqrt(jnp.maximum(disc, 0.0))
    new = t - t * (dt + d2 - d1) / (dt - d0 + 2.0 * d2)
    usable = jnp.isfinite(new) & (disc >= 0) & jnp.isfinite(ft) & jnp.isfinite(dt)
    return jnp.clip(jnp.where(usable, new, 0.5 * t), 0.1 * t, 0.5 * t)


def _accept(
    state: HeadState, point, moved, f_t, g_t, norm_t, l1w, cfg: Settings, write
) -> HeadState:
    """The trial ``point`` (``theta + moved``) becomes the new point: memory
    update and a new direction (OWL-QN's, where ``l1w`` has weights).

    The memory rows S, Y are written only where ``write`` (the trial is
    taken): one row each, so the (m, P) memory is never copied whole."""
    first = state.evaluations == 0
    s = moved
    y = g_t - state.g
    sy, yy = jnp.vdot(s, y), jnp.vdot(y, y)
    store = (~first) & (sy > 1e-10 * jnp.sqrt(jnp.vdot(s, s) * yy))
    slot = jnp.where(store, (state.newest + 1) % cfg.memory, state.newest)
    S = state.S.at[slot].set(jnp.where(store & write, s, state.S[slot]))
    Y = state.Y.at[slot].set(jnp.where(store & write, y, state.Y[slot]))
    rho = state.rho.at[slot].set(jnp.where(store, 1.0 / sy, state.rho[slot]))
    gamma = jnp.where(store, sy / yy, state.gamma)
    pg = pseudo_gradient(point, g_t, l1w)
    d = _two_loop(pg, S, Y, rho, slot, gamma)
    if l1w is not None:  # OWL-QN: where L1 applies, d keeps pg's signs
        d = jnp.where((l1w > 0) & (d * pg >= 0), jnp.zeros_like(d), d)
    bad = ~(jnp.vdot(pg, d) < 0)  # not a descent direction: forget the memory
    rho = jnp.where(bad, jnp.zeros_like(rho), rho)
    d = jnp.where(bad, -gamma * pg, d)
    gap = -0.5 * jnp.vdot(pg, d)
    orthant = state.orthant  # used only where L1 applies
    if l1w is not None:
        orthant = jnp.where(point != 0, jnp.sign(point), -jnp.sign(pg))
    iterations = state.iterations + jnp.where(first, 0, 1)
    converged = (gap <= cfg.rtol * jnp.abs(f_t)) | (norm_t <= cfg.gtol)
    return state._replace(
        theta=point,
        f=f_t,
        g=g_t,
        direction=d,
        step=jnp.asarray(1.0, state.step.dtype),
        orthant=orthant,
        S=S,
        Y=Y,
        rho=rho,
        newest=slot,
        gamma=gamma,
        iterations=iterations,
        backtracks=jnp.asarray(0, jnp.int32),
        gap=gap,
        grad_norm=norm_t,
        done=converged | (iterations >= cfg.max_iter),
        converged=converged,
    )


def flat_rtol(cfg: Settings, dtype: jnp.dtype) -> float:
    """The approximate Wolfe condition's allowed relative rise of f."""
    if cfg.flat_rtol is not None:
        return cfg.flat_rtol
    return 8.0 * float(jnp.finfo(dtype).eps)


def advance(
    state: HeadState,
    f_t: jax.Array,
    g_t: jax.Array,
    norm_t: jax.Array,
    l1w: jax.Array,
    cfg: Settings,
) -> HeadState:
    """One head's move after a pass gave f_t (with the L1 term), g_t (the
    smooth part's gradient) at its trial point.

    ``norm_t`` is the raw (pseudo-)gradient's norm there (for ``cfg.gtol``),
    ``l1w`` (P,) the L1 weights (None: no L1 term, ``cfg.owlqn`` False).
    Heads already done are returned unchanged.
    """
    t = state.step
    point = trial(state, l1w)
    # the step taken: t d, or where a coordinate was projected, its move
    moved = t * state.direction
    if l1w is not None:
        moved = jnp.where(l1w > 0, point - state.theta, moved)
    pg0 = pseudo_gradient(state.theta, state.g, l1w)
    d0 = jnp.vdot(pg0, state.direction)
    dt = jnp.vdot(pseudo_gradient(point, g_t, l1w), state.direction)
    finite = jnp.isfinite(f_t) & jnp.all(jnp.isfinite(g_t))
    armijo = f_t <= state.f + cfg.armijo * jnp.vdot(pg0, moved)
    rise = flat_rtol(cfg, state.f.dtype)
    flat = (f_t <= state.f + rise * jnp.abs(state.f)) & (dt <= cfg.flat_slope * -d0)
    ok = finite & ((state.evaluations == 0) | armijo | flat)
    accepted = _accept(
        state, point, moved, f_t, g_t, norm_t, l1w, cfg, write=ok & ~state.done
    )
    backtracks = state.backtracks + 1
    rejected = state._replace(
        step=_cubic_step(state.f, d0, f_t, dt, t),
        backtracks=backtracks,
        done=backtracks >= cfg.max_backtracks,  # stalled
    )
    new = _select(ok, accepted, rejected)._replace(S=accepted.S, Y=accepted.Y)
    new = new._replace(
        evaluations=state.evaluations + 1, step=jnp.where(new.done, 0.0, new.step)
    )
    return _select(state.done, state, new)._replace(S=new.S, Y=new.Y)


def _select(which: jax.Array, a: HeadState, b: HeadState) -> HeadState:
    """``a`` where ``which``, else ``b``, field by field, except the memory
    S, Y (taken from ``b``: `_accept` writes them only where they change)."""
    return HeadState(
        *(
            b_field if name in ("S", "Y") else jnp.where(which, a_field, b_field)
            for name, a_field, b_field in zip(HeadState._fields, a, b, strict=True)
        )
    )
