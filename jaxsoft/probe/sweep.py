"""`sweep`: every L2 strength of an exact logistic regression, chosen on validation.

Each head is the exact minimiser of `jaxsoft.loss(params, x, y, l2)`, the
objective of scikit-learn's ``LogisticRegression(C=1 / (l2 * n))``. All
heads are solved together by preconditioned L-BFGS (`jaxsoft.probe.solver`),
one pass over the data per iteration for every head. The strength is chosen
on the validation split, or without one by k-fold cross-validation in which
every fold and every strength shares the same passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsoft import model, validation
from jaxsoft.probe import basis as basis_lib
from jaxsoft.probe import lbfgs, placement
from jaxsoft.probe.features import ProbeInputError, validate_features
from jaxsoft.probe.passes import NO_FOLD, moments_pass, score_pass
from jaxsoft.probe.solver import Heads, Progress, solve_heads

__all__ = ["DEFAULT_L2", "SweepResult", "sweep"]

DEFAULT_L2 = tuple(float(v) for v in np.geomspace(1e-6, 1e-1, 8))


class SweepResult(NamedTuple):
    """Every head of a sweep, and the chosen one.

    Attributes:
      l2: (H,) the strengths, as given.
      objective: (H,) each head's final `jaxsoft.loss` on the training split.
      val_accuracy: (H,) validation accuracy (the cross-validated accuracy
        when no validation split was given).
      best: the head with the highest ``val_accuracy`` (ties: larger l2).
      params: `Params` of the chosen head, W (d, q), b (q,) (refit on
        train + validation when ``refit=True``).
      heads: `Params` of every head, W (H, d, q), b (H, q), trained on the
        training split.
      iterations: (H,) L-BFGS iterations per head.
      converged: (H,) whether each head met the objective tolerance.
      passes: (H,) data passes each head took part in.
      train_accuracy, train_top5, val_top5: (H,) more scores (top-5 counts
        the true class among the 5 highest logits).
      selection: "validation" or "k-fold cross-validation".
      fold_accuracy: (folds, H) per-fold accuracy, or None.
      refit_objective: the refit head's objective on train + validation.
    """

    l2: np.ndarray
    objective: np.ndarray
    val_accuracy: np.ndarray
    best: int
    params: model.Params
    heads: model.Params
    iterations: np.ndarray
    converged: np.ndarray
    passes: np.ndarray
    train_accuracy: np.ndarray
    train_top5: np.ndarray
    val_top5: np.ndarray
    selection: str
    fold_accuracy: np.ndarray | None = None
    refit_objective: float | None = None


def check_l2(l2: Any) -> np.ndarray:
    """The strengths as a float64 array (H,), each finite and > 0."""
    values = np.atleast_1d(np.asarray(l2, dtype=object))
    if values.ndim != 1 or values.size == 0:
        raise ProbeInputError("l2 must list at least one strength, e.g. 1e-6 1e-4.")
    for value in values:
        ok = isinstance(value, (int, float, np.integer, np.floating))
        if not ok or isinstance(value, bool) or not np.isfinite(value) or value <= 0:
            raise ProbeInputError(f"l2 strengths must be numbers > 0, got {value!r}.")
    return values.astype(np.float64)


def choose(accuracy: np.ndarray, l2: np.ndarray) -> int:
    """The index of the highest accuracy; among ties, the largest l2."""
    tied = np.flatnonzero(accuracy == accuracy.max())
    return int(tied[np.argmax(l2[tied])])


def _fold_ids(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Stratified fold index per row: each class spread evenly over folds."""
    perm = np.random.default_rng(seed).permutation(len(y))
    order = perm[np.argsort(y[perm], kind="stable")]
    fold = np.empty(len(y), np.int32)
    fold[order] = np.arange(len(y)) % folds
    return fold


def _start(basis: basis_lib.Basis, y: np.ndarray, q: int, H: int) -> jax.Array:
    """Starting points (H, P): W = 0 and the intercept at the class log-priors."""
    prior = np.bincount(y, minlength=q)[:q] + 0.5
    c = np.log(prior / prior.sum())
    theta = np.zeros((H, basis.V.shape[0] * q + q), np.float32)
    theta[:, -q:] = (c - c.mean()) * np.sqrt(float(basis.alpha))
    return jnp.asarray(theta)


def _to_params(
    basis: basis_lib.Basis, theta: jax.Array, l2: np.ndarray
) -> model.Params:
    """Solver coordinates (H, P) -> `Params` W (H, d, q), b (H, q)."""
    return _to_params_jit(basis, theta, jnp.asarray(l2, jnp.float32))


@jax.jit
def _to_params_jit(basis, theta, l2):
    return jax.vmap(basis_lib.to_params, in_axes=(None, 0, 0))(basis, theta, l2)


class _Setup(NamedTuple):
    x: Any
    y: np.ndarray
    x_val: Any
    y_val: Any
    q: int
    budget: int


def _validated(x, y, x_val, y_val, num_classes, max_device_bytes) -> _Setup:
    y_host = np.asarray(y)
    if num_classes is None:
        if y_host.ndim != 1 or y_host.size == 0 or y_host.dtype.kind not in "iu":
            num_classes = 2  # validate_split reports what is wrong with y
        else:
            num_classes = max(2, int(y_host.max()) + 1)
    d = x.shape[1] if getattr(x, "ndim", 0) == 2 else None
    x, y = validate_features(
        x, y, num_classes=num_classes, num_features=None, split="train"
    )
    if (x_val is None) != (y_val is None):
        raise ProbeInputError("give both x_val and y_val, or neither.")
    if x_val is not None:
        x_val, y_val = validate_features(
            x_val, y_val, num_classes=num_classes, num_features=d, split="val"
        )
    budget = placement.device_budget(max_device_bytes)
    return _Setup(x, np.asarray(y, np.int32), x_val, y_val, num_classes, budget)


def _settings(rtol: Any, max_iter: Any) -> lbfgs.Settings:
    try:
        rtol = validation.positive_float("rtol", rtol)
        max_iter = validation.positive_int("max_iter", max_iter)
    except ValueError as err:
        raise ProbeInputError(str(err)) from None
    return lbfgs.Settings(rtol=rtol, max_iter=max_iter)


def _solve(rows, basis, l2, held, count, theta0, cfg, progress) -> lbfgs.HeadState:
    heads = Heads(
        l2=jnp.asarray(l2, jnp.float32),
        held=jnp.asarray(held, jnp.int32),
        count=jnp.asarray(count, jnp.float32),
    )
    return solve_heads(rows, basis, heads, theta0, cfg, progress)


def _check_folds(folds: Any, n: int) -> int:
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)):
        raise ProbeInputError(f"folds must be an integer >= 2, got {folds!r}.")
    if not 2 <= folds <= n:
        raise ProbeInputError(
            f"folds must be between 2 and the {n} training rows, got {folds}."
        )
    return int(folds)


def _refit(s: _Setup, basis, l2: float, start: model.Params, cfg, chunk, progress):
    """The head of strength l2 solved on train + validation, from ``start``."""
    parts = [(s.x, s.y), (s.x_val, s.y_val)]
    rows = placement.make_rows(
        parts, budget=s.budget, rows_per_chunk=placement.chunk_rows(1, s.q, chunk)
    )
    theta0 = jax.jit(basis_lib.from_params)(basis, start, jnp.float32(l2))[None]
    state = _solve(rows, basis, [l2], [NO_FOLD], [rows.n], theta0, cfg, progress)
    params = _to_params(basis, state.theta, np.array([l2]))
    return model.Params(params.W[0], params.b[0]), float(state.f[0])


def _cv_scores(top1, top5, count, H: int, folds: int):
    """CV accuracy per strength: head (fold f, strength h) on fold f's rows."""
    idx = (np.arange(folds)[:, None] + 1) * H + np.arange(H)[None, :]
    hits1 = np.take_along_axis(top1, idx, axis=1)  # (folds, H)
    hits5 = np.take_along_axis(top5, idx, axis=1)
    n = count.sum()
    return hits1 / count[:, None], hits1.sum(0) / n, hits5.sum(0) / n


def sweep(
    x_train: Any,
    y_train: Any,
    l2: Sequence[float] = DEFAULT_L2,
    *,
    x_val: Any = None,
    y_val: Any = None,
    num_classes: int | None = None,
    folds: int = 5,
    refit: bool = False,
    rtol: float = 1e-7,
    max_iter: int = 1000,
    max_device_bytes: int | None = None,
    chunk_rows: int | None = None,
    seed: int = 0,
    progress: Callable[[Progress], None] | None = None,
) -> SweepResult:
    """Solves a softmax-regression head for every L2 strength; picks one.

    Each head minimises ``jaxsoft.loss(params, x_train, y_train, l2)``
    (scikit-learn's ``LogisticRegression(C=1 / (l2 * n))``) until its
    estimated objective gap is at most ``rtol`` times the objective.

    Args:
      x_train: features (n, d): NumPy (memmaps too) or JAX; any float
        dtype (bf16 and f16 are computed in float32), integer or bool.
      y_train: integer labels (n,) in [0, q).
      l2: the strengths (H,), each > 0 (a log grid by default).
      x_val, y_val: the validation split; without it the strength is
        chosen by ``folds``-fold cross-validation on the training split.
      num_classes: q (default: the largest training label + 1).
      folds: folds of the cross-validation.
      refit: with a validation split, solve the chosen strength again on
        train + validation (from the chosen head) for ``params``.
      rtol: the objective tolerance (estimated gap <= rtol * objective).
      max_iter: L-BFGS iterations per head at most.
      max_device_bytes: features larger than this stay on the host and
        stream through the device in row chunks (default: half the device
        memory; a quarter of RAM on CPU). The result is the same.
      chunk_rows: rows per chunk (default: sized for the heads' buffers).
      seed: seed of the fold assignment.
      progress: called with a `Progress` after every data pass.

    Returns:
      A `SweepResult`.

    Raises:
      ProbeInputError: invalid splits or settings (a ValueError).

    Example:
      >>> import numpy as np
      >>> from jaxsoft import probe
      >>> rng = np.random.default_rng(0)
      >>> y = rng.integers(0, 3, 300)
      >>> x = rng.normal(size=(300, 4)) + np.eye(3, 4)[y] * 2
      >>> res = probe.sweep(
      ...     x[:200], y[:200], [1e-3, 1e-1], x_val=x[200:], y_val=y[200:]
      ... )
      >>> res.heads.W.shape, res.params.W.shape, bool(res.converged.all())
      ((2, 4, 3), (4, 3), True)
    """
    l2 = check_l2(l2)
    cfg = _settings(rtol, max_iter)
    s = _validated(x_train, y_train, x_val, y_val, num_classes, max_device_bytes)
    cv = s.x_val is None
    folds = _check_folds(folds, len(s.y)) if cv else 1
    fit = _fit_heads(s, l2, folds, seed, cfg, chunk_rows, progress)
    H, n = len(l2), len(s.y)
    heads = model.Params(fit.every.W[:H], fit.every.b[:H])
    fold_accuracy = None
    if cv:
        fold_accuracy, val_acc, val_top5 = _cv_scores(*fit.scores, H, folds)
    else:
        val_acc, val_top5 = _val_scores(s, heads, fit.chunk)
    best = choose(val_acc, l2)
    params, refit_objective = model.Params(heads.W[best], heads.b[best]), None
    if refit and not cv:
        params, refit_objective = _refit(
            s, fit.basis, float(l2[best]), params, cfg, chunk_rows, progress
        )
    top1, top5, _ = fit.scores
    return SweepResult(
        l2=l2,
        objective=np.asarray(fit.state.f[:H], np.float64),
        val_accuracy=val_acc,
        best=best,
        params=params,
        heads=heads,
        iterations=np.asarray(fit.state.iterations[:H]),
        converged=np.asarray(fit.state.converged[:H]),
        passes=np.asarray(fit.state.evaluations[:H]),
        train_accuracy=top1[:, :H].sum(0) / n,
        train_top5=top5[:, :H].sum(0) / n,
        val_top5=val_top5,
        selection=f"{folds}-fold cross-validation" if cv else "validation",
        fold_accuracy=fold_accuracy,
        refit_objective=refit_objective,
    )


class _Fit(NamedTuple):
    basis: basis_lib.Basis
    state: lbfgs.HeadState  # (G H,): the full-data heads first, then each fold's
    every: model.Params  # the same heads as Params
    scores: tuple[np.ndarray, np.ndarray, np.ndarray]  # score_pass on train
    chunk: int


def _fit_heads(s: _Setup, l2, folds: int, seed: int, cfg, chunk_rows, progress):
    """Solves every strength on all rows, and (folds > 1) without each fold."""
    n, H = len(s.y), len(l2)
    fold = _fold_ids(s.y, folds, seed) if folds > 1 else np.zeros(n, np.int32)
    groups = np.array([NO_FOLD] + (list(range(folds)) if folds > 1 else []))
    held, l2_all = np.repeat(groups, H), np.tile(l2, len(groups))
    per_fold = np.bincount(fold, minlength=folds)
    count = n - np.where(held >= 0, per_fold[np.maximum(held, 0)], 0)
    chunk = placement.chunk_rows(len(held), s.q, chunk_rows)
    rows = placement.make_rows(
        [(s.x, s.y, fold)], budget=s.budget, rows_per_chunk=chunk
    )
    basis = basis_lib.make_basis(*moments_pass(rows), s.q)
    theta0 = _start(basis, s.y, s.q, len(held))
    state = _solve(rows, basis, l2_all, held, count, theta0, cfg, progress)
    every = _to_params(basis, state.theta, l2_all)
    scores = score_pass(rows, every.W, every.b, folds)
    return _Fit(basis, state, every, scores, chunk)


def _val_scores(s: _Setup, heads: model.Params, chunk: int):
    rows = placement.make_rows(
        [(s.x_val, s.y_val)], budget=s.budget, rows_per_chunk=chunk
    )
    top1, top5, count = score_pass(rows, heads.W, heads.b)
    return top1[0] / count[0], top5[0] / count[0]
