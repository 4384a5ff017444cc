"""`LogisticRegression`: scikit-learn's estimator on the exact engine."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model._base import LinearClassifierMixin, SparseCoefMixin
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.extmath import softmax
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_is_fitted,
    validate_data,
)

try:  # scikit-learn >= 1.9
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # pragma: no cover

    class CallbackSupportMixin:  # type: ignore[no-redef]
        """No callbacks before scikit-learn 1.9."""


from jaxsoft.linear_model._fitting import (
    _SOLVERS,
    _check_liblinear,
    _check_solver,
    _convergence_message,
    _fit_heads,
    _from_engine,
    _l1_fraction,
    _prepare_targets,
    _to_engine_start,
)
from jaxsoft.model import Params

__all__ = ["LogisticRegression"]


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
