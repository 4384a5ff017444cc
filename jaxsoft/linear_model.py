"""scikit-learn estimators on jaxsoft's exact engine (`jaxsoft.exact.solve`).

``LogisticRegression`` and ``LogisticRegressionCV`` are drop-ins for
scikit-learn 1.9's: the same parameters in the same order with the same
defaults, validation, errors and warnings (``penalty`` deprecated for
``l1_ratio`` and ``C=np.inf``, ``n_jobs`` warned about, ``_check_solver``'s
refusals), plus a last keyword ``mesh`` (a `jax.sharding.Mesh` with a "data"
axis to shard rows over; None: every device). They hold no math of their
own: labels are encoded, class weights folded into sample weights, ``C`` and
``l1_ratio`` mapped to the engine's strengths, the engine's optimum mapped
back to scikit-learn's attributes.

Every ``solver`` name reaches the optimum of the objective that solver
minimises in scikit-learn, and each is solved by the one engine (L-BFGS, and
OWL-QN for an L1 term). ``lbfgs``, ``newton-cg``, ``newton-cholesky``,
``sag`` and ``saga`` all minimise

    sum_i s_i l_i / S + ((1 - r) / 2 ||W||^2 + r ||W||_1) / (C S)

(``s_i`` the sample weights times the class weights, ``S = sum_i s_i``,
``r`` the ``l1_ratio``, the intercept unpenalised; ``C=np.inf``: no
penalty), the engine's ``sum_i s_i CE_i / S + (l2 / 2) ||W||^2 + l1 ||W||_1``:

- More than two classes: the same multinomial model, so ``l2 = (1 - r) / (C S)``,
  ``l1 = r / (C S)``, ``coef_ = W.T`` and ``intercept_ = b - mean(b)``.
- Two classes: scikit-learn fits one logit ``z = x w + c``. A two-class
  softmax depends only on ``W[:, 1] - W[:, 0]``, and the penalty is smallest
  at ``W = [-w/2, w/2]``, where ``||W||^2 = ||w||^2 / 2`` and
  ``||W||_1 = ||w||_1``; so ``l2 = 2 (1 - r) / (C S)``, ``l1 = r / (C S)``,
  ``coef_ = (W[:, 1] - W[:, 0]).T`` (shape (1, d)), ``intercept_ = b1 - b0``.

``liblinear`` (two classes only, as in scikit-learn 1.9) penalises the
intercept: it fits ``[X, intercept_scaling]`` with no separate intercept, so
the engine fits that matrix with ``fit_intercept=False`` and
``intercept_ = intercept_scaling * w[-1]``. ``dual=True`` (L2 only) has the
same optimum. As scikit-learn's liblinear, it returns float64 attributes.

``tol``: every solver name stops when the largest entry of the gradient of
the objective above (for an L1 term, of its minimum-norm subgradient) is at
most ``tol`` (scipy's ``gtol``, scikit-learn's meaning for ``lbfgs``; the
other solvers' own rules differ, and no rule of theirs is imitated). For two
classes the gradient w.r.t. the softmax's ``W[:, 1]`` is half the gradient
w.r.t. ``w``, so the engine gets ``gtol = tol / 2``. A `ConvergenceWarning`
(with the message scikit-learn's solver of that name gives) means that bound
was not met within ``max_iter``. In float64, where a data pass is small (rows
x heads x classes x features under 2^22, a pass of a millisecond or so), the
engine then polishes, to ``1e-6 * tol`` in at most 100 more iterations
(within ``max_iter``): the result no longer depends on the path taken (so
integer weights give exactly repeated rows' fit, as scikit-learn's checks
demand to 1e-7), for a few milliseconds. Larger float64 fits, and float32
fits, stop at ``tol`` itself, as scikit-learn does.

``random_state`` is accepted and has no effect: the engine is deterministic.
``verbose`` is accepted and prints nothing. Callbacks (``set_callbacks``) see
the fit as one task: the iterations run on the device as one compiled
program, with no host hook per iteration.

float64 input is solved in float64 (under ``jax.enable_x64``), float32 input
in float32 with float32 ``coef_`` and ``intercept_`` (``LogisticRegressionCV``
validates X to float64, as scikit-learn's does). Sparse X (any scipy.sparse
format; text, one-hot tables) is fitted as it is, never made dense: the
engine's sparse rows (`jaxsoft.exact.sparse_rows`); predictions take sparse
X too, and ``sparsify()`` makes ``coef_`` sparse. Fitted attributes are NumPy
arrays: the estimators pickle and clone.
"""

from __future__ import annotations

import numbers
import warnings
from numbers import Integral, Real
from typing import Any

import jax
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model._base import LinearClassifierMixin, SparseCoefMixin
from sklearn.metrics import get_scorer, get_scorer_names, make_scorer
from sklearn.model_selection import check_cv
from sklearn.utils import metadata_routing
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.extmath import softmax
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _manual_routing,
    _raise_for_params,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_method_params,
    _check_sample_weight,
    _deprecate_positional_args,
    check_is_fitted,
    validate_data,
)

try:  # scikit-learn >= 1.9
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # pragma: no cover

    class CallbackSupportMixin:  # type: ignore[no-redef]
        """No callbacks before scikit-learn 1.9."""


from jaxsoft.compile_cache import enable_default_cache
from jaxsoft.exact import solve
from jaxsoft.model import Params

__all__ = ["LogisticRegression", "LogisticRegressionCV"]

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
    """Encodes y, folds in class weights; returns (codes, weights, classes)."""
    check_classification_targets(y)
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


class LogisticRegression(
    CallbackSupportMixin, LinearClassifierMixin, SparseCoefMixin, BaseEstimator
):
    """Logistic regression, scikit-learn 1.9's, on jaxsoft's exact engine.

    Parameters have scikit-learn's meaning (see the module docstring for what
    each solver name minimises, ``tol`` and ``random_state``); ``mesh`` is a
    `jax.sharding.Mesh` with a "data" axis to shard rows over (None: every
    device).
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        "penalty": [
            StrOptions({"l1", "l2", "elasticnet"}),
            None,
            Hidden(StrOptions({"deprecated"})),
        ],
        "C": [Interval(Real, 0, None, closed="right")],
        "l1_ratio": [Interval(Real, 0, 1, closed="both"), None],
        "dual": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "intercept_scaling": [Interval(Real, 0, None, closed="neither")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "random_state": ["random_state"],
        "solver": [StrOptions(_SOLVERS)],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "n_jobs": [None, Integral],
        "mesh": "no_validation",
    }

    def __init__(
        self,
        penalty="deprecated",
        *,
        C=1.0,
        l1_ratio=0.0,
        dual=False,
        tol=1e-4,
        fit_intercept=True,
        intercept_scaling=1,
        class_weight=None,
        random_state=None,
        solver="lbfgs",
        max_iter=100,
        verbose=0,
        warm_start=False,
        n_jobs=None,
        mesh=None,
    ):
        self.penalty = penalty
        self.C = C
        self.l1_ratio = l1_ratio
        self.dual = dual
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.class_weight = class_weight
        self.random_state = random_state
        self.solver = solver
        self.max_iter = max_iter
        self.verbose = verbose
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.mesh = mesh

    def set_callbacks(self, *callbacks):
        """Sets callbacks (scikit-learn's; they see the fit as one task)."""
        if self.solver != "lbfgs":
            warnings.warn(
                f"Callbacks are only supported in {self.__class__.__name__} for"
                f" solver='lbfgs'. This estimator has solver='{self.solver}', callbacks"
                " will be ignored during the solving of the regression.",
                stacklevel=2,
            )
        return super().set_callbacks(*callbacks)

    def _resolve_penalty(self) -> tuple[str | None, float]:
        """scikit-learn's (penalty, C) from ``penalty``, ``l1_ratio`` and ``C``,
        with its warnings and refusals."""
        if self.penalty == "deprecated":
            if self.l1_ratio == 0 or self.l1_ratio is None:
                penalty = "l2"
                if self.l1_ratio is None:
                    warnings.warn(
                        "'l1_ratio=None' was deprecated in version 1.8 and will "
                        "trigger an error in 1.10. Use 0<=l1_ratio<=1 instead.",
                        FutureWarning,
                        stacklevel=4,
                    )
            elif self.l1_ratio == 1:
                penalty = "l1"
            else:
                penalty = "elasticnet"
            if np.isposinf(self.C):
                penalty = None
        else:
            penalty = self.penalty
            warnings.warn(
                "'penalty' was deprecated in version 1.8 and will be removed in"
                " 1.10. To avoid this warning, leave 'penalty' set to its default"
                " value and use 'l1_ratio' or 'C' instead."
                " Use l1_ratio=0 instead of penalty='l2',"
                " l1_ratio=1 instead of penalty='l1',"
                " l1_ratio set to a float between 0 and 1 instead of"
                " penalty='elasticnet', and C=np.inf instead of penalty=None.",
                FutureWarning,
                stacklevel=4,
            )
        _check_solver(self.solver, penalty, self.dual)
        if penalty != "elasticnet" and (
            self.l1_ratio is not None and 0 < self.l1_ratio < 1
        ):
            warnings.warn(
                "l1_ratio parameter is only used when penalty is "
                f"'elasticnet'. Got (penalty={penalty})",
                stacklevel=4,
            )
        if (self.penalty == "l2" and self.l1_ratio != 0) or (
            self.penalty == "l1" and self.l1_ratio != 1
        ):
            warnings.warn(
                f"Inconsistent values: penalty={self.penalty} with "
                f"l1_ratio={self.l1_ratio}. penalty is deprecated. Please use "
                "l1_ratio only.",
                stacklevel=4,
            )
        if penalty == "elasticnet" and self.l1_ratio is None:
            raise ValueError("l1_ratio must be specified when penalty is elasticnet.")
        C = self.C
        if self.penalty is None:
            if self.C != 1.0:
                warnings.warn(
                    "Setting penalty=None will ignore the C and l1_ratio parameters",
                    stacklevel=4,
                )
            C, penalty = np.inf, "l2"
        if self.n_jobs is not None:
            warnings.warn(
                "'n_jobs' has no effect since 1.8 and will be removed in 1.10. "
                f"You provided 'n_jobs={self.n_jobs}', please leave it unspecified.",
                FutureWarning,
                stacklevel=4,
            )
        return penalty, C

    def _warm_start_point(self, q: int, d: int, liblinear: bool) -> Params | None:
        """The previous fit as the engine's start, checked as scikit-learn checks
        it (liblinear does not warm-start, as in scikit-learn)."""
        coef = getattr(self, "coef_", None) if self.warm_start else None
        if coef is None or liblinear:
            return None
        coef = coef.toarray() if sp.issparse(coef) else np.asarray(coef)
        intercept = np.asarray(self.intercept_, np.float64).reshape(-1)
        width = d + int(self.fit_intercept)
        expected = (width,) if q == 2 else (q, width)
        full = coef
        if self.fit_intercept:
            full = np.concatenate([coef, intercept[:, None]], axis=1)
        if q == 2:
            if full.shape not in ((width,), (1, width)):
                raise ValueError(
                    f"Initialization coef is of shape {full.shape}, expected shape "
                    f"{expected} or (1, {width})"
                )
        elif full.shape != expected:
            raise ValueError(
                f"Initialization coef is of shape {full.shape}, expected shape "
                f"{expected}"
            )
        full = full.reshape(1 if q == 2 else q, width).astype(np.float64)
        if self.fit_intercept:
            return _to_engine_start(full[:, :-1], full[:, -1], q)
        return _to_engine_start(full, np.zeros(len(full)), q)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fits the model to the optimum of the solver's objective; returns self."""
        penalty, C = self._resolve_penalty()
        solver = self.solver
        liblinear = solver == "liblinear"
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse="csr",
            dtype=[np.float64, np.float32],
            order="C",
            accept_large_sparse=solver not in ["liblinear", "sag", "saga"],
        )
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        q = len(self.classes_)
        ctx = None
        if hasattr(self, "_init_callback_context"):
            ctx = self._init_callback_context(max_subtasks=0)
            meta = None if sample_weight is None else {"sample_weight": sample_weight}
            ctx.call_on_fit_task_begin(estimator=self, X=X, y=y, metadata=meta)
        if liblinear:
            _check_liblinear(X, q)
            X = X.astype(np.float64, copy=False)  # liblinear computes in float64
        codes, sw, _ = _prepare_targets(self, y, sample_weight, X)
        d = X.shape[1]
        start = self._warm_start_point(q, d, liblinear)
        if self.max_iter == 0:
            start = start or Params(np.zeros((d, q)), np.zeros(q))
            coef, intercept = _from_engine(start.W, start.b, q)
            n_iter = np.zeros(1, dtype=np.int32)
        else:
            coef, intercept, iterations, converged, objective = _fit_heads(
                X,
                codes,
                sw,
                q,
                Cs=np.array([C], np.float64),
                ratios=np.array([_l1_fraction(penalty, self.l1_ratio)]),
                sets=None,
                liblinear=liblinear,
                intercept_scaling=float(self.intercept_scaling),
                fit_intercept=self.fit_intercept,
                tol=self.tol,
                max_iter=self.max_iter,
                mesh=self.mesh,
                start=start,
            )
            coef, intercept = coef[0, 0], intercept[0, 0]
            n_iter = np.asarray(iterations[0, :1], dtype=np.int32).reshape(1)
            if not bool(np.all(converged)):
                warnings.warn(
                    _convergence_message(
                        solver, int(n_iter[0]), self.max_iter, self.tol, objective[0, 0]
                    ),
                    ConvergenceWarning,
                    stacklevel=3,
                )
        dtype = np.float64 if liblinear else X.dtype
        self.coef_ = np.asarray(coef, dtype)
        self.intercept_ = np.asarray(intercept, dtype)
        if liblinear and not self.fit_intercept:
            self.intercept_ = 0.0  # scikit-learn's liblinear gives a float
        self.n_iter_ = n_iter
        if ctx is not None:
            ctx.call_on_fit_task_end(
                estimator=self, X=X, y=y, metadata=None, reconstruction_attributes={}
            )
        return self

    def predict_proba(self, X):
        """Class probabilities (n, n_classes), in the order of ``classes_``."""
        check_is_fitted(self)
        if len(self.classes_) <= 2:
            return self._predict_proba_lr(X)
        return softmax(np.asarray(self.decision_function(X)), copy=False)

    def predict_log_proba(self, X):
        """Log class probabilities (n, n_classes)."""
        return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # sparse X is fitted as it is
        if self.solver == "liblinear":
            tags.classifier_tags.multi_class = False
        return tags


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


class LogisticRegressionCV(LogisticRegression):
    """Logistic regression with C (and l1_ratio) chosen by cross-validation,
    scikit-learn 1.9's, on jaxsoft's exact engine.

    The same folds, per-fold objectives, scores and choice of the pair
    (C, l1_ratio) as scikit-learn. Every fold, every C and every l1_ratio, and
    the refit on every row at every pair, is one head of a single
    `jaxsoft.exact.solve`: all of them share each pass over the data (the
    refit at the chosen pair is then at hand, with no second solve to
    compile).

    Parameters have scikit-learn's meaning; ``mesh`` is a
    `jax.sharding.Mesh` with a "data" axis (None: every device).

    Attributes, as scikit-learn's (k = 1 for two classes, else the number of
    classes; F folds, L Cs, R l1_ratios, d' = d + fit_intercept): Cs_ (L,);
    l1_ratios_ (R,) ([None] without l1_ratios); coef_ (k, d); intercept_ (k,).
    Legacy attributes (the default): C_ and l1_ratio_ (k,); scores_
    {class: (F, L, R)}; coefs_paths_ {class: (F, L, R, d')}; n_iter_
    (1, F, L, R) (the R axis dropped when l1_ratios is None). With
    ``use_legacy_attributes=False``: C_ and l1_ratio_ floats, scores_ (F, R, L),
    coefs_paths_ (F, R, L, k, d'), n_iter_ (F, R, L).
    """

    __metadata_request__score = {"sample_weight": metadata_routing.UNUSED}  # noqa: RUF012
    _parameter_constraints: dict = {  # noqa: RUF012
        **{
            key: value
            for key, value in LogisticRegression._parameter_constraints.items()
            if key not in ("C", "warm_start", "l1_ratio")
        },
        "Cs": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "l1_ratios": ["array-like", None, Hidden(StrOptions({"warn"}))],
        "cv": ["cv_object"],
        "scoring": [
            StrOptions(set(get_scorer_names())),
            callable,
            None,
            Hidden(StrOptions({"warn"})),
        ],
        "refit": ["boolean"],
        "penalty": [
            StrOptions({"l1", "l2", "elasticnet"}),
            Hidden(StrOptions({"deprecated"})),
        ],
        "use_legacy_attributes": ["boolean", Hidden(StrOptions({"warn"}))],
        "mesh": "no_validation",
    }

    def __init__(
        self,
        *,
        Cs=10,
        l1_ratios="warn",
        fit_intercept=True,
        cv=None,
        dual=False,
        penalty="deprecated",
        scoring="warn",
        solver="lbfgs",
        tol=1e-4,
        max_iter=100,
        class_weight=None,
        n_jobs=None,
        verbose=0,
        refit=True,
        intercept_scaling=1.0,
        random_state=None,
        use_legacy_attributes="warn",
        mesh=None,
    ):
        self.Cs = Cs
        self.l1_ratios = l1_ratios
        self.fit_intercept = fit_intercept
        self.cv = cv
        self.dual = dual
        self.penalty = penalty
        self.scoring = scoring
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.solver = solver
        self.refit = refit
        self.intercept_scaling = intercept_scaling
        self.random_state = random_state
        self.use_legacy_attributes = use_legacy_attributes
        self.mesh = mesh

    def _resolve_grid(self):
        """scikit-learn's (penalty, l1_ratios, l1_ratios_, scoring, legacy),
        with its warnings and refusals."""
        if isinstance(self.l1_ratios, str) and self.l1_ratios == "warn":
            l1_ratios = None
            warnings.warn(
                "The default value for l1_ratios will change from None to (0.0,) "
                "in version 1.10. From version 1.10 onwards, only array-like "
                "with values in [0, 1] will be allowed, None will be forbidden. "
                "To avoid this warning, explicitly set a value, "
                "e.g. l1_ratios=(0,).",
                FutureWarning,
                stacklevel=4,
            )
        else:
            l1_ratios = self.l1_ratios
        if self.penalty == "deprecated":
            if self.l1_ratios is None:
                warnings.warn(
                    "'l1_ratios=None' was deprecated in version 1.8 and will "
                    "trigger an error in 1.10. Use an array-like with values"
                    "in [0, 1] instead.",
                    FutureWarning,
                    stacklevel=4,
                )
            if l1_ratios is None or np.all(np.asarray(l1_ratios) == 0):
                penalty = "l2"
            elif np.all(np.asarray(l1_ratios) == 1):
                penalty = "l1"
            else:
                penalty = "elasticnet"
        else:
            penalty = self.penalty
            warnings.warn(
                "'penalty' was deprecated in version 1.8 and will be removed in"
                " 1.10. To avoid this warning, leave 'penalty' set to its default"
                " value and use 'l1_ratios' and 'Cs' instead."
                " Use l1_ratios=(0,) instead of penalty='l2',"
                " l1_ratios=(1,) instead of penalty='l1',"
                " l1_ratios set to floats between 0 and 1 instead of"
                " penalty='elasticnet', and Cs=(np.inf,) instead of penalty=None.",
                FutureWarning,
                stacklevel=4,
            )
        scoring = self.scoring
        if scoring == "warn":
            warnings.warn(
                "The default value of the parameter 'scoring' will change from None, "
                "i.e. accuracy, to 'neg_log_loss' in version 1.11. To silence this "
                "warning, explicitly set the scoring parameter: "
                "scoring='neg_log_loss' for the new, scoring='accuracy' or "
                "scoring=None for the old default.",
                FutureWarning,
                stacklevel=4,
            )
            scoring = None
        legacy = self.use_legacy_attributes
        if legacy == "warn":
            name = type(self).__name__
            warnings.warn(
                f"The fitted attributes of {name} will be "
                "simplified in scikit-learn 1.10 to remove redundancy. Set"
                "`use_legacy_attributes=False` to enable the new behavior now, or "
                "set it to `True` to silence this warning during the transition "
                "period while keeping the deprecated behavior for the time being. "
                "The default value of use_legacy_attributes will change from True "
                f"to False in scikit-learn 1.10. See the docstring of {name} "
                "for more details.",
                FutureWarning,
                stacklevel=4,
            )
            legacy = True
        _check_solver(self.solver, penalty, self.dual)
        if penalty == "elasticnet":
            if (
                l1_ratios is None
                or len(l1_ratios) == 0
                or any(
                    not isinstance(r, numbers.Number) or r < 0 or r > 1
                    for r in l1_ratios
                )
            ):
                raise ValueError(
                    "l1_ratios must be an array-like of numbers between "
                    f"0 and 1; got (l1_ratios={l1_ratios!r})"
                )
            grid = l1_ratios
        else:
            if l1_ratios is not None and self.penalty != "deprecated":
                warnings.warn(
                    "l1_ratios parameter is only used when penalty "
                    f"is 'elasticnet'. Got (penalty={penalty})",
                    stacklevel=4,
                )
            grid = [None] if l1_ratios is None else l1_ratios
        return penalty, l1_ratios, grid, scoring, bool(legacy)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, **params):
        """Cross-validates every (C, l1_ratio), then refits; returns self.

        ``params`` go to the splitter and the scorer (metadata routing).
        """
        _raise_for_params(params, self, "fit")
        penalty, l1_ratios, grid, scoring, legacy = self._resolve_grid()
        solver = self.solver
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse="csr",
            dtype=np.float64,
            order="C",
            accept_large_sparse=solver not in ["liblinear", "sag", "saga"],
        )
        check_classification_targets(y)
        classes = self.classes_ = np.unique(y)
        q = len(classes)
        if q < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes"
                " in the data, but the data contains only one"
                f" class: {classes[0]}."
            )
        if isinstance(self.class_weight, dict) and not (
            set(self.class_weight) <= set(classes)
        ):
            raise ValueError(
                "The given class_weight dict must have the class labels as keys; "
                f"classes={classes} but key={self.class_weight.keys()}"
            )
        if _routing_enabled():
            routed = process_routing(self, "fit", sample_weight=sample_weight, **params)
        else:
            score_kwargs = dict(params)
            if sample_weight is not None:
                score_kwargs["sample_weight"] = sample_weight
            routed = _manual_routing(
                {"splitter": {}, "scorer": {"score": score_kwargs}}
            )
        splitter = check_cv(self.cv, y, classifier=True)
        folds = list(splitter.split(X, y, **routed.splitter.split))
        if solver == "liblinear":
            _check_liblinear(X, q)
        codes, sw, _ = _prepare_targets(self, y, sample_weight, X)

        Cs = _grid_of_cs(self.Cs)
        ratios = [_l1_fraction(penalty, r) for r in grid]
        L, R, F = len(Cs), len(grid), len(folds)
        # heads ordered (C, r): head c * R + j
        head_C = np.repeat(Cs, R)
        head_r = np.tile(np.asarray(ratios, np.float64), L)
        G = F + 1 if self.refit else F
        sets = np.zeros((G, len(y)), dtype=bool)
        for g, (train, _) in enumerate(folds):
            sets[g, train] = True
        sets[F:] = True
        k = 1 if q == 2 else q
        d = X.shape[1]
        if self.max_iter == 0:
            coef = np.zeros((G, L * R, k, d))
            intercept = np.zeros((G, L * R, k))
            n_iter = np.zeros((G, L * R), np.int32)
            converged = np.ones((G, L * R), bool)
            objective = np.zeros((G, L * R))
        else:
            coef, intercept, n_iter, converged, objective = _fit_heads(
                X,
                codes,
                sw,
                q,
                Cs=head_C,
                ratios=head_r,
                sets=sets,
                liblinear=solver == "liblinear",
                intercept_scaling=float(self.intercept_scaling),
                fit_intercept=self.fit_intercept,
                tol=self.tol,
                max_iter=self.max_iter,
                mesh=self.mesh,
            )
        scores = self._score_folds(
            X, y, sample_weight, folds, coef[:F], intercept[:F], scoring, routed
        ).reshape(F, L, R)
        self.Cs_ = Cs
        l1_grid = np.asarray(grid)
        if self.refit:
            total = scores.sum(axis=0)
            best_c, best_r = np.unravel_index(np.argmax(total), total.shape)
            head = best_c * R + best_r
            C_, l1_ratio_ = Cs[best_c], grid[best_r]
            if self.max_iter == 0:  # scikit-learn's start: the folds' mean
                w_coef = coef[:F, head].mean(axis=0)
                w_int = intercept[:F, head].mean(axis=0)
            else:
                w_coef, w_int = coef[F, head], intercept[F, head]
            converged = np.append(converged[:F].ravel(), converged[F, head])
        else:
            best = np.argmax(scores.reshape(F, L * R), axis=1)
            w_coef = coef[np.arange(F), best].mean(axis=0)
            w_int = intercept[np.arange(F), best].mean(axis=0)
            C_ = float(np.mean(Cs[best // R]))
            if penalty == "elasticnet":
                l1_ratio_ = float(np.mean(l1_grid[best % R].astype(np.float64)))
            else:
                l1_ratio_ = 0.0
            converged = converged[:F]
        self.coef_ = np.asarray(w_coef, np.float64)
        self.intercept_ = np.asarray(w_int if self.fit_intercept else np.zeros(k))
        self._set_paths(
            classes, k, C_, l1_ratio_, l1_ratios, grid, legacy,
            coef[:F], intercept[:F], scores, n_iter[:F],
        )  # fmt: skip
        if not bool(np.all(converged)):
            warnings.warn(
                _convergence_message(
                    solver, int(n_iter.max()), self.max_iter, self.tol,
                    float(objective.max()),
                ),
                ConvergenceWarning,
                stacklevel=3,
            )  # fmt: skip
        return self

    def _score_folds(
        self, X, y, sample_weight, folds, coefs, intercepts, scoring, routed
    ):
        """Scores (F, H) of every fold's heads on its held-out rows, as
        scikit-learn's ``_log_reg_scoring_path``: scoring None is the
        weighted accuracy; else the scorer, with the routed score params."""
        weights = (
            None
            if sample_weight is None
            else _check_sample_weight(sample_weight, X, dtype=np.float64)
        )
        scores = np.zeros(coefs.shape[:2])
        if scoring is None:  # accuracy, as `score`, without its checks
            for g, (_, test) in enumerate(folds):
                codes = np.searchsorted(self.classes_, y[test])
                w = None if weights is None else weights[test]
                for i in range(coefs.shape[1]):
                    z = X[test] @ coefs[g, i].T + intercepts[g, i]
                    predicted = (z[:, 0] > 0) if z.shape[1] == 1 else z.argmax(1)
                    scores[g, i] = np.average(predicted == codes, weights=w)
            return scores
        model = LogisticRegression(solver=self.solver)
        model.classes_ = self.classes_
        score = _fold_scorer(scoring, self.classes_)
        for g, (_, test) in enumerate(folds):
            kw = _check_method_params(X, params=routed.scorer.score, indices=test)
            for i in range(coefs.shape[1]):
                model.coef_, model.intercept_ = coefs[g, i], intercepts[g, i]
                scores[g, i] = score(model, X[test], y[test], **kw)
        return scores

    def _set_paths(
        self, classes, k, C_, l1_ratio_, l1_ratios, grid, legacy,
        coefs, intercepts, scores, n_iter,
    ):  # fmt: skip
        """``C_``, ``l1_ratio_``, ``l1_ratios_``, ``scores_``, ``coefs_paths_``
        and ``n_iter_`` in scikit-learn's layouts; coefs (F, L R, k, d),
        scores (F, L, R), n_iter (F, L R)."""
        F, L, R = scores.shape
        paths = coefs
        if self.fit_intercept:
            paths = np.concatenate([coefs, intercepts[..., None]], axis=-1)
        paths = paths.reshape(F, L, R, k, -1)  # (F, L, R, k, d')
        n_iter = np.asarray(n_iter, np.int32).reshape(F, L, R)
        keys = classes[1:] if k == 1 else classes
        self.l1_ratios_ = np.asarray(grid)
        if legacy:
            self.C_ = np.full(k, C_)
            self.l1_ratio_ = np.asarray([l1_ratio_] * k)
            if l1_ratios is None:
                self.scores_ = {c: scores[:, :, 0].copy() for c in keys}
                self.coefs_paths_ = {
                    c: paths[:, :, 0, j].copy() for j, c in enumerate(keys)
                }
                self.n_iter_ = n_iter[None, :, :, 0]
            else:
                self.scores_ = {c: scores.copy() for c in keys}
                self.coefs_paths_ = {
                    c: paths[:, :, :, j].copy() for j, c in enumerate(keys)
                }
                self.n_iter_ = n_iter[None]
        else:
            self.C_ = float(C_)
            if l1_ratios is None:
                self.l1_ratio_ = 1.0 if self.penalty == "l1" else 0.0
            else:
                self.l1_ratio_ = float(l1_ratio_)
            self.scores_ = np.swapaxes(scores, 1, 2).copy()
            self.coefs_paths_ = np.swapaxes(paths, 1, 2).copy()
            self.n_iter_ = np.swapaxes(n_iter, 1, 2).copy()

    @_deprecate_positional_args(version="1.11")
    def score(self, X, y, *, sample_weight=None, **score_params):
        """The ``scoring`` score (accuracy by default) of the model on (X, y)."""
        _raise_for_params(score_params, self, "score")
        if sample_weight is not None:
            score_params["sample_weight"] = sample_weight
        scoring = self._get_scorer()
        if _routing_enabled():
            routed = process_routing(self, "score", **score_params)
        else:
            sw = score_params.get("sample_weight")
            routed = _manual_routing(
                {"scorer": {"score": {} if sw is None else {"sample_weight": sw}}}
            )
        return scoring(self, X, y, **routed.scorer.score)

    def get_metadata_routing(self):
        """scikit-learn's routing: ``fit`` params to the splitter's ``split``
        and the scorer's ``score``; ``score`` params to the scorer."""
        return (
            MetadataRouter(owner=self)
            .add_self_request(self)
            .add(
                splitter=self.cv,
                method_mapping=MethodMapping().add(caller="fit", callee="split"),
            )
            .add(
                scorer=self._get_scorer(),
                method_mapping=MethodMapping()
                .add(caller="score", callee="score")
                .add(caller="fit", callee="score"),
            )
        )

    def _get_scorer(self):
        """The scorer of ``scoring`` (accuracy for None and the default)."""
        if self.scoring == "warn":
            return get_scorer("accuracy")
        return get_scorer(self.scoring or "accuracy")
