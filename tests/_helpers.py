"""Helpers shared by several test files: float64 NumPy and plain-JAX
references of the math (softmax, the objective), small problems for the
exact engine's unit tests, a run's final parameters, a free port.

The references here are written from the formulas of DESIGN.md and
`jaxsoft.exact`'s docstrings, never from jaxsoft's own code, so that a test
comparing jaxsoft with them can fail.
"""

from __future__ import annotations

import socket
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

# ------------------------------------------------ float64 NumPy references


def softmax64(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Float64 softmax(x W + b) of shape (n, q)."""
    o = np.asarray(x, np.float64) @ np.asarray(w, np.float64) + np.asarray(b)
    e = np.exp(o - o.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def objective64(W, b, x, y, l2: float, *, w=None, l1: float = 0.0) -> float:
    """sum w CE / sum w + (l2/2) ||W||^2 + l1 ||W||_1 in NumPy float64 (w
    None: the mean); x dense or scipy.sparse."""
    x = x.astype(np.float64) if sp.issparse(x) else np.asarray(x, np.float64)
    W = np.asarray(W, np.float64)
    o = x @ W + np.asarray(b, np.float64)
    ce = logsumexp(o, axis=1) - o[np.arange(len(y)), y]
    w = np.ones(len(y)) if w is None else np.asarray(w, np.float64)
    penalty = 0.5 * l2 * np.sum(np.square(W)) + l1 * np.sum(np.abs(W))
    return float(np.sum(w * ce) / np.sum(w) + penalty)


# ------------------------------------------------ runs and processes


def final_params(out: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """The last checkpoint of the run in ``out``: W, b (NumPy) and its
    metadata."""
    from jaxsoft.experiment import checkpoint

    params, meta = checkpoint.load_params(out)
    return np.asarray(params.W), np.asarray(params.b), meta


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------ the exact engine's unit tests


def weighted_problem(
    n: int = 60, d: int = 5, q: int = 4, *, sets: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A small float64 problem: x (n, d) with correlated columns of unequal
    scales and offsets, labels y (n,) in [0, q) (each class present), sample
    weights w (n,) in [0.2, 3], and a membership (n, sets) of training sets
    (set 0 every row, the others about two thirds of the rows each)."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) * rng.uniform(0.3, 3.0, d)
    x = rng.normal(size=(n, d)) @ mix + rng.uniform(-5.0, 5.0, d)
    y = np.arange(n) % q
    rng.shuffle(y)
    w = rng.uniform(0.2, 3.0, n)
    member = np.ones((n, sets), bool)
    member[:, 1:] = rng.uniform(size=(n, sets - 1)) < 2 / 3
    return x, y.astype(np.int32), w, member


def weighted_ce_sum(x, y, w, W, b) -> jax.Array:
    """sum_i w_i CE_i for logits x W + b (plain JAX, no jaxsoft)."""
    o = x @ W + b
    log_p = o - jax.nn.logsumexp(o, axis=-1, keepdims=True)
    return -jnp.sum(w * log_p[jnp.arange(len(y)), y])


def objective(x, y, w, W, b, l2) -> jax.Array:
    """The one objective: sum_i w_i CE_i / sum_i w_i + (l2 / 2) ||W||^2."""
    return weighted_ce_sum(x, y, w, W, b) / jnp.sum(w) + 0.5 * l2 * jnp.sum(W * W)


def weighted_mean_and_cov(
    x: np.ndarray, w: np.ndarray, *, about_zero: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The weighted mean (d,) and covariance (d, d) of x, normalised by the
    weights' sum (``about_zero``: mean 0 and the second moment about 0)."""
    mean = np.zeros(x.shape[1]) if about_zero else np.average(x, axis=0, weights=w)
    xc = x - mean
    return mean, (xc * w[:, None]).T @ xc / w.sum()


def _lbfgs_step(state, l1w, data, *, f_and_grad, cfg):
    from jaxsoft.exact import lbfgs

    point = lbfgs.trial(state, l1w)
    f, g = f_and_grad(point, *data)
    if l1w is not None:  # None: no L1 term, without OWL-QN's operations
        f = f + jnp.sum(l1w * jnp.abs(point))
    norm = jnp.max(jnp.abs(lbfgs.pseudo_gradient(point, g, l1w)))
    return lbfgs.advance(state, f, g, norm, l1w, cfg)


_lbfgs_step_jit = jax.jit(_lbfgs_step, static_argnames=("f_and_grad", "cfg"))


def drive_lbfgs(
    f_and_grad, theta0, l1w, iterations: int, *, data=(), cfg=None, trail=None
):
    """Runs one head of `jaxsoft.exact.lbfgs.advance` on an objective given
    in closed form: ``f_and_grad(point, *data)`` is its smooth part's value
    and gradient, to which ``sum l1w |theta|`` is added. At most 4 x
    ``iterations`` passes; ``cfg`` defaults to rtol 0, gtol 1e-12, memory 5
    and max_iter ``iterations``; ``l1w`` None (no L1 term) needs
    ``cfg.owlqn`` False. ``trail``, a list, receives the state after
    each pass. Returns the last state.

    One program per (f_and_grad, cfg, shapes): a module-level ``f_and_grad``
    with its arrays in ``data`` is compiled once for all of them."""
    from jaxsoft.exact import lbfgs

    if cfg is None:
        cfg = lbfgs.Settings(rtol=0.0, gtol=1e-12, max_iter=iterations, memory=5)
    state = lbfgs.init_host(np.asarray(theta0)[None], cfg.memory)
    state = jax.tree.map(lambda a: jnp.asarray(a[0]), state)
    l1w = None if l1w is None else jnp.asarray(l1w)
    data = tuple(jnp.asarray(a) for a in data)
    for _ in range(4 * iterations):
        if bool(state.done):
            break
        state = _lbfgs_step_jit(state, l1w, data, f_and_grad=f_and_grad, cfg=cfg)
        if trail is not None:
            trail.append(state)
    return state
