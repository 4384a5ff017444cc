"""scikit-learn estimators on jaxsoft's exact engine (`jaxsoft.exact.solve`).

``jaxsoft.linear_model.LogisticRegression`` is a drop-in for scikit-learn's
``LogisticRegression(solver="lbfgs")``. It holds no math of its own: labels are
encoded, class weights folded into sample weights, ``C`` mapped to the engine's
L2 strength, and the engine's optimum mapped back to scikit-learn's attributes.

The mapping of ``C``. scikit-learn's lbfgs objective is

    sum_i s_i l_i / S + ||W||^2 / (2 C S),      S = sum_i s_i

(``s_i`` the sample weights times the class weights), and the engine's is
``sum_i s_i CE_i / S + (l2 / 2) ||W||^2``, with the bias unpenalised in both.

- More than two classes: both are the multinomial model with every column of
  ``W`` penalised, so ``l2 = 1 / (C S)`` and ``coef_ = W.T``.
- Two classes: scikit-learn fits one logit ``z = x w + c``. A two-class softmax
  depends only on ``W[:, 1] - W[:, 0]``; adding a common vector to both columns
  leaves the loss unchanged and the penalty is smallest when they sum to zero,
  so its optimum is ``W = [-w/2, w/2]``, whose penalty is
  ``(l2 / 2) * 2 * ||w||^2 / 4 = (l2 / 4) ||w||^2``. Matching
  ``||w||^2 / (2 C S)`` gives ``l2 = 2 / (C S)``; then
  ``coef_ = (W[:, 1] - W[:, 0]).T`` (shape (1, d)), ``intercept_ = b1 - b0``.

``tol`` keeps scikit-learn's meaning: stop when the largest entry of the
gradient of the objective above is at most ``tol`` (scipy's ``gtol``). For
two classes the gradient w.r.t. the softmax's ``W[:, 1]`` is half the gradient
w.r.t. scikit-learn's ``w``, so the engine gets ``gtol = tol / 2``.
A `ConvergenceWarning` means that bound was not met within ``max_iter``.
In float64, where a data pass is small (rows x heads x classes x features
under 2^22, a pass of a millisecond or so), the engine then polishes, to
``1e-6 * tol`` in at most 100 more iterations (within ``max_iter``): the
result no longer depends on the path taken (so integer weights give exactly
repeated rows' fit, as scikit-learn's checks demand to 1e-7), for a few
milliseconds. Larger float64 fits, and float32 fits, stop at ``tol`` itself,
as scikit-learn does (polishing MNIST would cost more than the fit: 100
passes of 80 ms).

float64 input is solved in float64 (under ``jax.enable_x64``), float32 input in
float32. Fitted attributes are NumPy arrays: the estimators pickle and clone.
"""

from __future__ import annotations

import inspect
import numbers
import warnings
from numbers import Integral

import jax
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.metrics import get_scorer, get_scorer_names, make_scorer
from sklearn.model_selection import check_cv
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, validate_data

from jaxsoft.compile_cache import enable_default_cache
from jaxsoft.exact import solve
from jaxsoft.model import Params

__all__ = ["LogisticRegression", "LogisticRegressionCV"]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _class_weights(class_weight, classes, y, sw) -> np.ndarray:
    """Per-class weights (k,); "balanced" counts rows by their sample weight.

    scikit-learn >= 1.6 weighs the class counts of "balanced" by the sample
    weights (so integer weights equal repeated rows); earlier ones did not.
    """
    if "sample_weight" in inspect.signature(compute_class_weight).parameters:
        return compute_class_weight(
            class_weight, classes=classes, y=y, sample_weight=sw
        )
    return compute_class_weight(class_weight, classes=classes, y=y)


def _prepare_targets(estimator, y, sample_weight, X):
    """Encodes y, folds in class weights; returns (codes, weights, classes)."""
    check_classification_targets(y)
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            "This solver needs samples of at least 2 classes in the data, but "
            f"the data contains only one class: {classes[0]!r}."
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


def _to_engine_start(coef, intercept, q):
    """scikit-learn's (coef_, intercept_) as the engine's Params (d, q), (q,)."""
    if q == 2:
        w, c = coef[0], intercept[0]
        return Params(np.stack([-w / 2, w / 2], axis=1), np.array([-c / 2, c / 2]))
    return Params(np.ascontiguousarray(coef.T), np.asarray(intercept))


def _from_engine(W, b, q):
    """The engine's (W (d, q), b (q,)) as scikit-learn's (coef_, intercept_)."""
    W = np.asarray(W, np.float64)
    b = np.asarray(b, np.float64)
    if q == 2:
        return (W[:, 1] - W[:, 0])[None, :], np.array([b[1] - b[0]])
    return np.ascontiguousarray(W.T), b - b.mean()


def _l2(C, S, q):
    return (2.0 if q == 2 else 1.0) / (C * S)


def _gtol(tol, q):
    return tol / 2.0 if q == 2 else tol


# float64 solves go this far below scikit-learn's tol (see the module docstring),
# in at most this many more iterations.
_TIGHTEN_F64 = 1e-6
_POLISH_ITER = 100
_POLISH_MAX_WORK = 1 << 22  # rows x heads x classes x features of one pass


def _solve(X, codes, sw, l2s, q, *, tol, max_iter, fit_intercept, mesh, **kw):
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
    heads = np.size(l2s)
    small = X.shape[0] * X.shape[1] * heads * q < _POLISH_MAX_WORK
    if X.dtype == np.float64:
        with jax.enable_x64(True):
            sol = solve(
                X,
                codes,
                np.asarray(l2s, np.float64),
                polish=(gtol * _TIGHTEN_F64, _POLISH_ITER) if small else None,
                **kwargs,
            )
    else:
        sol = solve(X, codes, np.asarray(l2s, np.float64), **kwargs)
    return sol, sol.converged | (sol.grad_norm <= gtol)


class _Probabilities(LinearClassifierMixin, ClassifierMixin, BaseEstimator):
    """`predict_proba` and `predict_log_proba` from the linear decision."""

    def predict_proba(self, X):
        """Class probabilities (n, n_classes)."""
        z = self.decision_function(X)
        if z.ndim == 1:
            p = 1.0 / (1.0 + np.exp(-z))
            return np.column_stack([1.0 - p, p])
        return _softmax(np.array(z, dtype=np.float64, copy=True))

    def predict_log_proba(self, X):
        """Log class probabilities (n, n_classes)."""
        return np.log(self.predict_proba(X))


class LogisticRegression(_Probabilities):
    """Logistic regression (scikit-learn's lbfgs model) on jaxsoft's engine.

    Parameters have scikit-learn's meaning; ``mesh`` is a `jax.sharding.Mesh`
    with a "data" axis to shard rows over (None: every device).
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        "C": [Interval(numbers.Real, 0, None, closed="neither")],
        "fit_intercept": ["boolean"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "mesh": "no_validation",
    }

    def __init__(
        self,
        C=1.0,
        *,
        fit_intercept=True,
        tol=1e-4,
        max_iter=100,
        class_weight=None,
        warm_start=False,
        verbose=0,
        mesh=None,
    ):
        self.C = C
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.verbose = verbose
        self.mesh = mesh

    def fit(self, X, y, sample_weight=None):
        """Fits the model; returns self."""
        self._validate_params()
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=False,
            dtype=[np.float64, np.float32],
            order="C",
        )
        codes, sw, classes = _prepare_targets(self, y, sample_weight, X)
        q = len(classes)
        start = None
        if (
            self.warm_start
            and hasattr(self, "coef_")
            and self.coef_.shape == ((1 if q == 2 else q), X.shape[1])
        ):
            start = _to_engine_start(self.coef_, self.intercept_, q)
        self.classes_ = classes
        if self.max_iter == 0:
            if start is None:
                d = X.shape[1]
                start = Params(np.zeros((d, q)), np.zeros(q))
            self.coef_, self.intercept_ = _from_engine(start.W, start.b, q)
            self.n_iter_ = np.zeros(1, dtype=np.int32)
            return self
        if start is not None:
            start = Params(start.W.astype(X.dtype), start.b.astype(X.dtype))
        sol, converged = _solve(
            X,
            codes,
            sw,
            [_l2(self.C, sw.sum(), q)],
            q,
            tol=self.tol,
            max_iter=self.max_iter,
            fit_intercept=self.fit_intercept,
            mesh=self.mesh,
            start=start,
        )
        self.coef_, self.intercept_ = _from_engine(
            sol.params.W[0, 0], sol.params.b[0, 0], q
        )
        if not self.fit_intercept:
            self.intercept_ = np.zeros_like(self.intercept_)
        self.n_iter_ = np.asarray(sol.iterations[0, :1], dtype=np.int32).reshape(1)
        if not bool(np.all(converged)):
            warnings.warn(
                "jaxsoft's solver failed to converge after "
                f"{int(self.n_iter_[0])} iterations; increase max_iter or "
                "scale the data.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self


def _grid_of_cs(Cs) -> np.ndarray:
    """scikit-learn's grid: ``np.logspace(-4, 4, Cs)`` for an int, else Cs."""
    if isinstance(Cs, Integral):
        return np.logspace(-4, 4, int(Cs))
    grid = np.asarray(Cs, dtype=np.float64).ravel()
    if grid.size == 0 or not np.all(np.isfinite(grid) & (grid > 0)):
        raise ValueError(f"Cs must be positive, finite numbers; got {Cs!r}.")
    return grid


def _fold_scorer(scoring, classes):
    """A callable (estimator, X, y, **kw) scoring one held-out fold.

    As scikit-learn's ``_log_reg_scoring_path``: None is the estimator's
    weighted accuracy; a scorer whose metric takes ``labels`` gets every
    class (a fold may lack some).
    """
    if scoring is None:
        return lambda est, X, y, **kw: est.score(X, y, **kw)
    scorer = get_scorer(scoring)
    func = getattr(scorer, "_score_func", None)
    if func is not None and "labels" in inspect.signature(func).parameters:
        extra = {}
        if len(classes) <= 2 and "pos_label" in inspect.signature(func).parameters:
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


class LogisticRegressionCV(_Probabilities):
    """Logistic regression with C chosen by cross-validation, on jaxsoft's engine.

    scikit-learn's ``LogisticRegressionCV(solver="lbfgs")`` (its legacy
    attributes, the default of scikit-learn 1.9): the same folds, the same
    per-fold objective ``sum_i s_i l_i / S_g + ||W||^2 / (2 C S_g)``, the same
    scores and choice of C. Every fold and every C, and the refit on every
    row at every C, is one head of a single `jaxsoft.exact.solve`: all of
    them share each pass over the data (the refit at the chosen C is then at
    hand, with no second solve to compile).

    Parameters have scikit-learn's meaning (``Cs`` an int gives
    ``np.logspace(-4, 4, Cs)``; ``cv`` None is stratified 5-fold; ``scoring``
    None is accuracy); ``mesh`` is a `jax.sharding.Mesh` with a "data" axis
    (None: every device).

    Attributes (k = 1 for two classes, else the number of classes; F folds,
    L Cs, d' = d + fit_intercept):
      Cs_ (L,); C_ (1,) or (n_classes,); scores_ {class: (F, L)};
      coefs_paths_ {class: (F, L, d')}; n_iter_ (1, F, L); coef_ (k, d);
      intercept_ (k,). With ``use_legacy_attributes=False`` (scikit-learn's
      coming default): C_ a float, scores_ (F, 1, L), coefs_paths_
      (F, 1, L, k, d'), n_iter_ (F, 1, L).
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        "Cs": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "fit_intercept": ["boolean"],
        "cv": ["cv_object"],
        "scoring": [StrOptions(set(get_scorer_names())), callable, None],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "refit": ["boolean"],
        "verbose": ["verbose"],
        "use_legacy_attributes": ["boolean"],
        "mesh": "no_validation",
    }

    def __init__(
        self,
        Cs=10,
        *,
        fit_intercept=True,
        cv=None,
        scoring=None,
        tol=1e-4,
        max_iter=100,
        class_weight=None,
        refit=True,
        verbose=0,
        use_legacy_attributes=True,
        mesh=None,
    ):
        self.Cs = Cs
        self.fit_intercept = fit_intercept
        self.cv = cv
        self.scoring = scoring
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.refit = refit
        self.verbose = verbose
        self.use_legacy_attributes = use_legacy_attributes
        self.mesh = mesh

    def fit(self, X, y, sample_weight=None, **params):
        """Cross-validates every C, then refits; returns self.

        ``params`` go to the splitter's ``split`` (e.g. ``groups``).
        """
        self._validate_params()
        X, y = validate_data(
            self, X, y, accept_sparse=False, dtype=[np.float64, np.float32], order="C"
        )
        codes, sw, classes = _prepare_targets(self, y, sample_weight, X)
        self.classes_ = classes
        q = len(classes)
        k = 1 if q == 2 else q
        Cs = _grid_of_cs(self.Cs)
        folds = list(check_cv(self.cv, y, classifier=True).split(X, y, **params))
        F = len(folds)
        folds_fit, every_row = self._fold_paths(X, codes, sw, q, Cs, folds)
        coefs, intercepts, n_iter, converged = folds_fit
        if not self.fit_intercept:
            intercepts[:] = 0.0
        scores = self._score_folds(X, y, sample_weight, folds, coefs, intercepts)
        self.Cs_ = Cs
        if self.refit:
            best = int(np.argmax(scores.sum(axis=0)))
            C = float(Cs[best])
            self.coef_, self.intercept_, refit_ok = self._refit(
                every_row, best, coefs[:, best].mean(0), intercepts[:, best].mean(0)
            )
            converged = np.append(converged.ravel(), refit_ok)
        else:
            per_fold = np.argmax(scores, axis=1)
            C = float(np.mean(Cs[per_fold]))
            self.coef_ = coefs[np.arange(F), per_fold].mean(axis=0)
            self.intercept_ = intercepts[np.arange(F), per_fold].mean(axis=0)
        self.coef_ = np.asarray(self.coef_, X.dtype)
        self.intercept_ = np.asarray(self.intercept_, X.dtype)
        self._set_paths(classes, k, C, coefs, intercepts, scores, n_iter)
        if not bool(np.all(converged)):
            warnings.warn(
                "jaxsoft's solver failed to converge for some folds and Cs within "
                f"max_iter={self.max_iter} iterations; increase max_iter or scale "
                "the data.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _fold_paths(self, X, codes, sw, q, Cs, folds):
        """Every (fold, C) fit in one engine solve: ((coefs (F, L, k, d),
        intercepts (F, L, k), iterations and converged (F, L)), every_row).
        With ``refit``, every_row is the fits on every row at each C, (coefs
        (L, k, d), intercepts (L, k), converged (L,)), solved as more heads of
        the same passes (a separate refit would compile its own programs);
        else None."""
        (n, d), F, L = X.shape, len(folds), len(Cs)
        k = 1 if q == 2 else q
        sets = np.zeros((F + 1, n), dtype=bool)
        for g, (train, _) in enumerate(folds):
            sets[g, train] = True
        sets[F] = True
        totals = sets @ sw
        if not np.all(totals > 0):
            raise ValueError(
                "A cross-validation fold has a total sample weight of 0 in its "
                "training rows; give those rows positive weights or use fewer folds."
            )
        G = F + 1 if self.refit else F
        coefs = np.zeros((G, L, k, d), np.float64)
        intercepts = np.zeros((G, L, k), np.float64)
        if self.max_iter == 0:
            n_iter, converged = np.zeros((G, L), np.int32), np.ones((G, L), bool)
        else:
            sol, converged = _solve(
                X,
                codes,
                sw,
                _l2(Cs[None, :], totals[:G, None], q),
                q,
                tol=self.tol,
                max_iter=self.max_iter,
                fit_intercept=self.fit_intercept,
                mesh=self.mesh,
                row_sets=sets[:G],
            )
            n_iter = np.asarray(sol.iterations, np.int32)
            for g in range(G):
                for i in range(L):
                    c, b = _from_engine(sol.params.W[g, i], sol.params.b[g, i], q)
                    coefs[g, i], intercepts[g, i] = c, b
        fold = (coefs[:F], intercepts[:F], n_iter[:F], converged[:F])
        every_row = (coefs[F], intercepts[F], converged[F]) if self.refit else None
        return fold, every_row

    def _score_folds(self, X, y, sample_weight, folds, coefs, intercepts):
        """Scores (F, L) of every fold's model on its held-out rows."""
        model = LogisticRegression(fit_intercept=self.fit_intercept)
        model.classes_ = self.classes_
        model.n_features_in_ = self.n_features_in_
        if hasattr(self, "feature_names_in_"):
            model.feature_names_in_ = self.feature_names_in_
        score = _fold_scorer(self.scoring, self.classes_)
        weights = (
            None
            if sample_weight is None
            else _check_sample_weight(sample_weight, X, dtype=np.float64)
        )
        scores = np.zeros(coefs.shape[:2])
        for g, (_, test) in enumerate(folds):
            kw = {} if weights is None else {"sample_weight": weights[test]}
            if self.scoring is None:  # accuracy, as `score`, without its checks
                codes = np.searchsorted(self.classes_, y[test])
                for i in range(coefs.shape[1]):
                    z = X[test] @ coefs[g, i].T + intercepts[g, i]
                    predicted = (z[:, 0] > 0) if z.shape[1] == 1 else z.argmax(1)
                    hits = predicted == codes
                    scores[g, i] = np.average(hits, weights=kw.get("sample_weight"))
                continue
            for i in range(coefs.shape[1]):
                model.coef_, model.intercept_ = coefs[g, i], intercepts[g, i]
                scores[g, i] = score(model, X[test], y[test], **kw)
        return scores

    def _refit(self, every_row, best, coef, intercept):
        """The fit on every row at the chosen C (index ``best``); with
        ``max_iter=0``, the folds' mean at that C (scikit-learn's start)."""
        if self.max_iter == 0:
            return coef, intercept, True
        coefs, intercepts, converged = every_row
        intercept = intercepts[best]
        if not self.fit_intercept:
            intercept = np.zeros_like(intercept)
        return coefs[best], intercept, bool(converged[best])

    def _set_paths(self, classes, k, C, coefs, intercepts, scores, n_iter):
        """``C_``, ``scores_``, ``coefs_paths_``, ``n_iter_`` as scikit-learn's."""
        paths = coefs  # (F, L, k, d)
        if self.fit_intercept:
            paths = np.concatenate([coefs, intercepts[..., None]], axis=-1)
        keys = classes[1:] if k == 1 else classes
        self.l1_ratios_ = np.array([None])
        if self.use_legacy_attributes:
            self.C_ = np.full(k, C)
            self.l1_ratio_ = np.full(k, None)
            self.scores_ = {c: scores.copy() for c in keys}
            self.coefs_paths_ = {c: paths[:, :, j].copy() for j, c in enumerate(keys)}
            self.n_iter_ = n_iter[None]
        else:
            self.C_ = C
            self.l1_ratio_ = 0.0
            self.scores_ = scores[:, None]
            self.coefs_paths_ = paths[:, None]
            self.n_iter_ = n_iter[:, None]
