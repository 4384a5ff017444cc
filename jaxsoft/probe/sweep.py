"""`sweep`: every L2 strength of an exact logistic regression, chosen on validation.

Each head is the exact minimiser of `jaxsoft.loss(params, x, y, l2)`, the
objective of scikit-learn's ``LogisticRegression(C=1 / (l2 * n))``. All
heads are solved together by preconditioned L-BFGS in one `jaxsoft.exact.solve`,
one pass over the data per iteration for every head, and scored in one more
pass (`jaxsoft.exact.score`). The strength is chosen
on the validation split, or without one by k-fold cross-validation in which
every fold and every strength shares the same passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from jaxsoft import model, sharding
from jaxsoft.exact import (
    Part,
    Progress,
    Scores,
    check_l2,
    checked_weight,
    default_num_classes,
    score,
    solve,
)
from jaxsoft.probe.features import ProbeInputError, validate_features

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


class _Setup(NamedTuple):
    """`sweep`'s checked inputs (`_validated`)."""

    x: Any  # (n, d) as validated: NumPy, memmap, JAX or scipy.sparse
    y: np.ndarray  # (n,) int32
    w: np.ndarray | None  # (n,) training weights, None for all 1
    x_val: Any  # (m, d), or None: cross-validation
    y_val: np.ndarray | None  # (m,) int32
    w_val: np.ndarray | None  # (m,)
    q: int  # the number of classes
    max_device_bytes: int | None  # features on the device at most (None: default)
    mesh: Mesh


def _validated(
    *,
    x: Any,
    y: Any,
    x_val: Any,
    y_val: Any,
    num_classes: int | None,
    max_device_bytes: int | None,
    sample_weight: Any,
    val_weight: Any,
    mesh: Mesh | None,
) -> _Setup:
    """`sweep`'s inputs checked once, as a `_Setup`.

    Args:
      x, y: the training split: features (n, d) (NumPy, memmap, JAX or
        scipy.sparse) and integer labels (n,).
      x_val, y_val: the validation split, or both None.
      num_classes: q, or None for the largest training label + 1.
      max_device_bytes: the limit of features on the device, or None.
      sample_weight, val_weight: the splits' weights (n,), or None.
      mesh: a mesh with a "data" axis, or None for every device.

    Raises:
      ProbeInputError: an invalid split, weight or setting.
    """
    if num_classes is None:
        num_classes = default_num_classes(y)
    d = x.shape[1] if getattr(x, "ndim", 0) == 2 else None
    x, y = validate_features(
        x, y, num_classes=num_classes, num_features=None, split="train"
    )
    y = np.asarray(jax.device_get(y), np.int32)
    w = checked_weight(sample_weight, len(y), "train")
    if (x_val is None) != (y_val is None):
        raise ProbeInputError("give both x_val and y_val, or neither.")
    w_val = None
    if x_val is not None:
        x_val, y_val = validate_features(
            x_val, y_val, num_classes=num_classes, num_features=d, split="val"
        )
        y_val = np.asarray(jax.device_get(y_val), np.int32)
        w_val = checked_weight(val_weight, len(y_val), "val")
    elif val_weight is not None:
        raise ProbeInputError("val_sample_weight needs x_val and y_val.")
    return _Setup(
        x=x,
        y=y,
        w=w,
        x_val=x_val,
        y_val=y_val,
        w_val=w_val,
        q=num_classes,
        max_device_bytes=max_device_bytes,
        mesh=sharding.resolve_mesh(mesh),
    )


def _check_folds(folds: Any, n: int) -> int:
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)):
        raise ProbeInputError(f"folds must be an integer >= 2, got {folds!r}.")
    if not 2 <= folds <= n:
        raise ProbeInputError(
            f"folds must be between 2 and the {n} training rows, got {folds}."
        )
    return int(folds)


def _cv_scores(sc: Scores, H: int, folds: int):
    """CV accuracy per strength: head (fold f, strength h) on fold f's rows."""
    hits1 = sc.top1_outside[H:].reshape(folds, H)
    hits5 = sc.top5_outside[H:].reshape(folds, H)
    weight = sc.weight_outside[H:].reshape(folds, H)
    total = weight.sum(0)
    return hits1 / weight, hits1.sum(0) / total, hits5.sum(0) / total


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
    sample_weight: Any = None,
    val_sample_weight: Any = None,
    mesh: Mesh | None = None,
) -> SweepResult:
    """Solves a softmax-regression head for every L2 strength; picks one.

    Each head minimises ``jaxsoft.loss(params, x_train, y_train, l2,
    sample_weight=w)`` (scikit-learn's ``LogisticRegression(C=1 / (l2 *
    sum(w)))`` with ``sample_weight=w``) until its estimated objective gap is
    at most ``rtol`` times the objective; all heads are solved together by
    `jaxsoft.probe.solve`'s engine, on every device by default.

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
      sample_weight: training weights (n,) >= 0 (None: all 1); the scores
        (train, cross-validated) are weighted by them too.
      val_sample_weight: weights of the validation rows, for its scores.
      mesh: a `jax.sharding.Mesh` with a "data" axis, or None for every
        device: the row chunks are sharded over it.

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
    s = _validated(
        x=x_train,
        y=y_train,
        x_val=x_val,
        y_val=y_val,
        num_classes=num_classes,
        max_device_bytes=max_device_bytes,
        sample_weight=sample_weight,
        val_weight=val_sample_weight,
        mesh=mesh,
    )
    cv = s.x_val is None
    folds = _check_folds(folds, len(s.y)) if cv else 1
    sets = _row_sets(s.y, folds, seed)
    G, H = len(sets), len(l2)
    sol = solve(
        s.x, s.y, l2, num_classes=s.q, sample_weight=s.w, row_sets=sets,
        rtol=rtol, max_iter=max_iter, mesh=s.mesh, progress=progress,
        max_device_bytes=s.max_device_bytes, chunk_rows=chunk_rows,
        check_input=False,
    )  # fmt: skip
    W, b = sol.params
    every = model.Params(W.reshape(G * H, *W.shape[2:]), b.reshape(G * H, -1))
    sc = score(
        every, s.x, s.y, sample_weight=s.w, row_sets=sets,
        group=np.repeat(np.arange(G), H), split="train", mesh=s.mesh,
        max_device_bytes=s.max_device_bytes, chunk_rows=chunk_rows,
    )  # fmt: skip
    heads = model.Params(W[0], b[0])
    fold_accuracy = None
    if cv:
        fold_accuracy, val_acc, val_top5 = _cv_scores(sc, H, folds)
    else:
        val = score(
            heads, s.x_val, s.y_val, sample_weight=s.w_val, split="val",
            mesh=s.mesh, max_device_bytes=s.max_device_bytes, chunk_rows=chunk_rows,
        )  # fmt: skip
        val_acc, val_top5 = _accuracies(val)
    best = choose(val_acc, l2)
    params, refit_objective = model.Params(heads.W[best], heads.b[best]), None
    if refit and not cv:  # on train + validation, from the chosen head
        again = solve(
            s.x, s.y, [float(l2[best])], num_classes=s.q, sample_weight=s.w,
            more_rows=[Part(s.x_val, s.y_val, s.w_val)], start=params,
            rtol=rtol, max_iter=max_iter, mesh=s.mesh, progress=progress,
            max_device_bytes=s.max_device_bytes, chunk_rows=chunk_rows,
            check_input=False,
        )  # fmt: skip
        params = model.Params(again.params.W[0, 0], again.params.b[0, 0])
        refit_objective = float(again.objective[0, 0])
    train_accuracy, train_top5 = _accuracies(sc)
    return SweepResult(
        l2=l2,
        objective=sol.objective[0],
        val_accuracy=val_acc,
        best=best,
        params=params,
        heads=heads,
        iterations=sol.iterations[0],
        converged=sol.converged[0],
        passes=sol.passes[0],
        train_accuracy=train_accuracy[:H],
        train_top5=train_top5[:H],
        val_top5=val_top5,
        selection=f"{folds}-fold cross-validation" if cv else "validation",
        fold_accuracy=fold_accuracy,
        refit_objective=refit_objective,
    )


def _row_sets(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The training sets (G, n): every row, then (folds > 1) without each fold."""
    every = np.ones((1, len(y)), bool)
    if folds == 1:
        return every
    fold = _fold_ids(y, folds, seed)
    return np.concatenate([every, fold[None, :] != np.arange(folds)[:, None]])


def _accuracies(sc: Scores) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 and top-5 accuracy (H,) on the rows of each head's set."""
    return sc.top1_inside / sc.weight_inside, sc.top5_inside / sc.weight_inside
