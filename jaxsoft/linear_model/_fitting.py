"""The estimators' shared steps: solver names, targets, the engine's heads.

Checks of ``solver``/``penalty`` as scikit-learn 1.9 makes them, labels and
weights to the engine's inputs, ``C`` and ``l1_ratio`` to its strengths, and
one call of `jaxsoft.exact.solve` for every head of a fit.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import jax
import numpy as np
import scipy.sparse as sp
from sklearn.metrics import get_scorer, make_scorer
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import _check_sample_weight

from jaxsoft.compile_cache import enable_default_cache
from jaxsoft.exact import solve
from jaxsoft.model import Params

_SOLVERS = {"lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga"}

_LOGISTIC_SOLVER_CONVERGENCE_MSG = (
    "Please also refer to the documentation for alternative solver options:\n"
    "    https://scikit-learn.org/stable/modules/linear_model.html"
    "#logistic-regression"
)


def _check_solver(solver: str, penalty: str | None, dual: bool) -> str:
    """scikit-learn's refusals of a (solver, penalty, dual), word for word."""
    if solver not in ["liblinear", "saga"] and penalty not in ("l2", None):
        raise ValueError(
            f"Solver {solver} supports only 'l2' or None penalties, got {penalty} "
            "penalty."
        )
    if solver != "liblinear" and dual:
        raise ValueError(f"Solver {solver} supports only dual=False, got dual={dual}")
    if penalty == "elasticnet" and solver != "saga":
        raise ValueError(
            f"Only 'saga' solver supports elasticnet penalty, got solver={solver}."
        )
    if solver == "liblinear" and penalty is None:
        raise ValueError(
            "C=np.inf as well as penalty=None is not supported for the liblinear solver"
        )
    if solver == "liblinear" and penalty == "l1" and dual:
        raise ValueError(
            "Unsupported set of arguments: The combination of penalty='l1' and "
            "loss='logistic_regression' are not supported when dual=True, "
            "Parameters: penalty='l1', loss='logistic_regression', dual=True"
        )
    return solver


def _check_liblinear(X: np.ndarray, q: int) -> None:
    """liblinear's refusals of the data (scikit-learn 1.9)."""
    if q > 2:
        raise ValueError(
            "The 'liblinear' solver does not support multiclass classification"
            " (n_classes >= 3). Either use another solver or wrap the "
            "estimator in a OneVsRestClassifier to keep applying a "
            "one-versus-rest scheme."
        )
    if X.shape[0] * X.shape[1] and X.max() > 1e30:
        raise ValueError(
            "Using the 'liblinear' solver while X contains a maximum "
            "value > 1e30 results in a frozen fit. Please choose another "
            "solver or rescale the input X."
        )


def _l1_fraction(penalty: str | None, l1_ratio: float | None) -> float:
    """The L1 share ``r`` of the penalty scikit-learn's solver applies."""
    if penalty == "l1":
        return 1.0
    if penalty == "elasticnet":
        return float(l1_ratio)
    return 0.0


def _class_weights(class_weight, classes, y, sw) -> np.ndarray:
    """Per-class weights (k,); "balanced" counts rows by their sample weight."""
    return compute_class_weight(class_weight, classes=classes, y=y, sample_weight=sw)


def _prepare_targets(estimator, y, sample_weight, X):
    """Encodes y (checked by the caller: `check_classification_targets`),
    folds in class weights; returns (codes, weights, classes)."""
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            "This solver needs samples of at least 2 classes in the data, but "
            f"the data contains only one class: {classes[0]!r}"
        )
    sw = _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )
    if estimator.class_weight is not None:
        sw = sw * _class_weights(estimator.class_weight, classes, y, sw)[codes]
    present = np.bincount(codes, weights=sw, minlength=len(classes)) > 0
    if present.sum() < 2:
        raise ValueError(
            "The sample weights leave samples of fewer than 2 classes with a "
            "positive weight; at least 2 classes are needed."
        )
    return codes.astype(np.int32), sw, classes


def _to_engine_start(coef, intercept, q, intercept_scaling=None) -> Params:
    """scikit-learn's (coef_, intercept_) as the engine's Params (d, q), (q,)
    (liblinear: the intercept as the last weight, over ``intercept_scaling``)."""
    if intercept_scaling is not None:
        coef = np.concatenate([coef, intercept[:, None] / intercept_scaling], axis=1)
        intercept = np.zeros_like(intercept)
    if q == 2:
        w, c = coef[0], intercept[0]
        return Params(np.stack([-w / 2, w / 2], axis=1), np.array([-c / 2, c / 2]))
    return Params(np.ascontiguousarray(coef.T), np.asarray(intercept))


def _from_engine(W: np.ndarray, b: np.ndarray, q: int):
    """The engine's W (..., d, q), b (..., q) as scikit-learn's coef (..., k, d),
    intercept (..., k), k = 1 for two classes."""
    W = np.asarray(W, np.float64)
    b = np.asarray(b, np.float64)
    if q == 2:
        coef = (W[..., 1] - W[..., 0])[..., None, :]
        return coef, (b[..., 1] - b[..., 0])[..., None]
    return np.swapaxes(W, -1, -2).copy(), b - b.mean(axis=-1, keepdims=True)


def _strengths(Cs, ratios, S, q):
    """The engine's (l2, l1), each (G, L), for Cs and L1 shares (L,) and the
    training sets' total weights S (G,)."""
    Cs = np.asarray(Cs, np.float64)[None, :]
    ratios = np.asarray(ratios, np.float64)[None, :]
    with np.errstate(divide="ignore"):
        scale = np.where(np.isinf(Cs), 0.0, 1.0 / (Cs * np.asarray(S)[:, None]))
    l2 = (2.0 if q == 2 else 1.0) * (1.0 - ratios) * scale
    return l2, ratios * scale


def _gtol(tol, q):
    return tol / 2.0 if q == 2 else tol


# float64 solves go this far below scikit-learn's tol (see the module docstring),
# in at most this many more iterations.
_TIGHTEN_F64 = 1e-6
_POLISH_ITER = 100
_POLISH_MAX_WORK = 1 << 22  # rows x heads x classes x features of one pass


def _solve(X, codes, sw, l2s, l1s, q, *, tol, max_iter, fit_intercept, mesh, **kw):
    """One engine solve to scikit-learn's tol; in float64 with a small pass,
    then polished to ``gtol * _TIGHTEN_F64`` in at most `_POLISH_ITER` more
    iterations (so an ill-conditioned head, a weak penalty on separable data,
    costs a bounded number of passes). Returns (solution, converged to
    scikit-learn's tol)."""
    enable_default_cache()
    gtol = _gtol(tol, q)
    kwargs = dict(
        num_classes=q,
        sample_weight=sw,
        rtol=0.0,
        gtol=gtol,
        max_iter=int(max_iter),
        fit_intercept=bool(fit_intercept),
        mesh=mesh,
        # scikit-learn's validate_data has checked X (2-D, finite, float) and
        # the labels are codes in [0, q): the engine need not read X again.
        check_input=False,
        **kw,
    )
    l2s, l1s = np.asarray(l2s, np.float64), np.asarray(l1s, np.float64)
    heads = l2s.size
    small = X.shape[0] * X.shape[1] * heads * q < _POLISH_MAX_WORK
    if X.dtype == np.float64:
        with jax.enable_x64(True):
            sol = solve(
                X,
                codes,
                l2s,
                l1=l1s,
                polish=(gtol * _TIGHTEN_F64, _POLISH_ITER) if small else None,
                **kwargs,
            )
    else:
        sol = solve(X, codes, l2s, l1=l1s, **kwargs)
    return sol, sol.converged | (sol.grad_norm <= gtol)


def _fit_heads(
    X: np.ndarray,
    codes: np.ndarray,
    sw: np.ndarray,
    q: int,
    *,
    Cs: np.ndarray,
    ratios: np.ndarray,
    sets: np.ndarray | None,
    liblinear: bool,
    intercept_scaling: float,
    fit_intercept: bool,
    tol: float,
    max_iter: int,
    mesh: Any,
    start: Params | None = None,
):
    """Every (training set, (C, r)) head in one engine solve.

    Returns coef (G, L, k, d), intercept (G, L, k) (float64, scikit-learn's
    layout), iterations and converged (G, L) and the objectives (G, L)."""
    n = X.shape[0]
    S = np.array([sw.sum()]) if sets is None else sets @ sw
    if not np.all(S > 0):
        raise ValueError(
            "A cross-validation fold has a total sample weight of 0 in its "
            "training rows; give those rows positive weights or use fewer folds."
        )
    l2, l1 = _strengths(Cs, ratios, S, q)
    extend = liblinear and fit_intercept
    if extend:  # liblinear's penalised intercept: a constant column
        column = np.full((n, 1), intercept_scaling, X.dtype)
        if sp.issparse(X):
            X = sp.hstack([X, sp.csr_array(column)], format="csr", dtype=X.dtype)
        else:
            X = np.hstack([X, column])
    if start is not None:
        start = Params(start.W.astype(X.dtype), start.b.astype(X.dtype))
    sol, converged = _solve(
        X,
        codes,
        sw,
        l2,
        l1,
        q,
        tol=tol,
        max_iter=max_iter,
        fit_intercept=fit_intercept and not extend,
        mesh=mesh,
        row_sets=sets,
        start=start,
    )
    coef, intercept = _from_engine(sol.params.W, sol.params.b, q)
    if q > 2:
        # Without an L1 term the multinomial optimum has columns summing to 0
        # (the loss is invariant to a shift common to all classes and the L2
        # penalty is smallest at 0 mean): centring removes the solver's
        # residual, as scikit-learn's identifiability test demands (1e-10).
        l2_only = (np.asarray(ratios) == 0)[None, :, None, None]
        coef = np.where(l2_only, coef - coef.mean(axis=-2, keepdims=True), coef)
    if extend:
        coef, intercept = coef[..., :-1], intercept_scaling * coef[..., -1]
    elif not fit_intercept:
        intercept = np.zeros_like(intercept)
    return coef, intercept, np.asarray(sol.iterations), converged, sol.objective


def _convergence_message(solver, n_iter, max_iter, tol, objective) -> str:
    """scikit-learn's message for ``solver``, then what jaxsoft's test was."""
    head = {
        "lbfgs": f"lbfgs failed to converge after {n_iter} iteration(s).\n\n"
        "Increase the number of iterations to improve the convergence "
        f"(max_iter={max_iter}).\nYou might also want to scale the data as "
        "shown in:\n    https://scikit-learn.org/stable/modules/preprocessing.html"
        f"\n{_LOGISTIC_SOLVER_CONVERGENCE_MSG}",
        "newton-cg": f"newton-cg failed to converge at loss = {objective}. "
        "Increase the number of iterations.",
        "newton-cholesky": f"Newton solver did not converge after {n_iter} iterations.",
        "sag": "The max_iter was reached which means the coef_ did not converge",
        "liblinear": "Liblinear failed to converge, increase the number of iterations.",
    }
    head["saga"] = head["sag"]
    return (
        f"{head[solver]}\n(jaxsoft's exact solver, which every solver name runs, "
        f"stops when the largest entry of the objective's gradient is at most "
        f"tol={tol}; it was above that after max_iter={max_iter} iterations.)"
    )


def _grid_of_cs(Cs) -> np.ndarray:
    """scikit-learn's grid: ``np.logspace(-4, 4, Cs)`` for an int, else Cs
    (``np.inf`` meaning no penalty)."""
    if isinstance(Cs, Integral):
        return np.logspace(-4, 4, int(Cs))
    grid = np.asarray(Cs, dtype=np.float64).ravel()
    if grid.size == 0 or not np.all(~np.isnan(grid) & (grid > 0)):
        raise ValueError(f"Cs must be positive numbers; got {Cs!r}.")
    return grid


def _fold_scorer(scoring, classes):
    """A callable (estimator, X, y, **kw) scoring one held-out fold.

    As scikit-learn's ``_log_reg_scoring_path``: a scorer whose metric takes
    ``labels`` gets every class (a fold may lack some).
    """
    scorer = get_scorer(scoring)
    func = getattr(scorer, "_score_func", None)
    if func is None:
        return scorer
    import inspect

    sig = inspect.signature(func).parameters
    if "labels" in sig:
        extra = {}
        if len(classes) <= 2 and "pos_label" in sig:
            extra["pos_label"] = classes[-1]
        scorer = make_scorer(
            func,
            greater_is_better=scorer._sign == 1,
            response_method=scorer._response_method,
            labels=classes,
            **extra,
            **getattr(scorer, "_kwargs", {}),
        )
    return scorer
