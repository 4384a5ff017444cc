"""scikit-learn estimators on jaxsoft's exact engine (`jaxsoft.probe.solve`).

Thin: label encoding, validation through `sklearn.utils`, class and sample
weights, the mapping C <-> l2 and the fitted attributes. No math of its own.

The objective matches scikit-learn's lbfgs solver,
``sum_i s_i l_i / S + ||W||^2 / (2 C S)`` with ``S = sum_i s_i``. The engine
minimises ``sum_i s_i CE_i / S + (l2/2) ||W||^2``, so for q > 2 classes
``l2 = 1 / (C S)``. For two classes scikit-learn fits one logit; a two-class
softmax with both columns penalised has the symmetric optimum
``W = [-w/2, w/2]`` whose penalty is ``(l2/4) ||w||^2``, so ``l2 = 2 / (C S)``.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import jax
import numpy as np
from scipy.special import expit, log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import compute_class_weight
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

__all__ = ["LogisticRegression", "LogisticRegressionCV"]


def _l2_of(C: np.ndarray, total_weight: float, n_classes: int) -> np.ndarray:
    """Engine strengths (L,) for scikit-learn's Cs (L,)."""
    factor = 2.0 if n_classes == 2 else 1.0
    return factor / (np.asarray(C, dtype=np.float64) * total_weight)


def _weights(
    y_index: np.ndarray,
    classes: np.ndarray,
    class_weight: Any,
    sample_weight: np.ndarray,
) -> np.ndarray:
    """Sample weights (n,) times class weights of each row's class."""
    if class_weight is None:
        return sample_weight
    if isinstance(class_weight, dict):
        unknown = set(class_weight) - set(classes.tolist())
        if unknown:
            raise ValueError(
                f"The classes, {sorted(unknown, key=str)}, are not in class, {classes}"
            )
    cw = (
        compute_class_weight(
            class_weight, classes=classes, y=classes[y_index], sample_weight=None
        )
        if class_weight != "balanced"
        else compute_class_weight(
            "balanced", classes=np.arange(len(classes)), y=y_index
        )
    )
    return sample_weight * cw[y_index]


def _solve(
    X: np.ndarray,
    y_index: np.ndarray,
    l2: np.ndarray,
    n_classes: int,
    sample_weight: np.ndarray,
    *,
    row_sets: np.ndarray | None,
    start: Any,
    tol: float,
    max_iter: int,
    fit_intercept: bool,
    mesh: Any,
) -> Any:
    """One engine call; float64 X is solved in float64 under x64 mode."""
    from jaxsoft.probe import solve

    kwargs = dict(
        num_classes=n_classes,
        sample_weight=sample_weight.astype(X.dtype),
        row_sets=row_sets,
        start=start,
        rtol=0.0,
        gtol=tol,
        max_iter=max_iter,
        fit_intercept=fit_intercept,
        mesh=mesh,
    )
    if X.dtype == np.float64:
        with jax.enable_x64(True):
            return solve(X, y_index.astype(np.int32), list(l2), **kwargs)
    return solve(X, y_index.astype(np.int32), list(l2), **kwargs)


def _to_sklearn(W: np.ndarray, b: np.ndarray, n_classes: int) -> tuple:
    """Engine W (..., d, q), b (..., q) -> coef (..., k, d), intercept (..., k)."""
    coef = np.swapaxes(W, -1, -2)
    if n_classes == 2:
        return coef[..., 1:, :] - coef[..., :1, :], b[..., 1:] - b[..., :1]
    return coef, b


def _to_engine(coef: np.ndarray, intercept: np.ndarray, n_classes: int) -> tuple:
    """Inverse of `_to_sklearn` (the symmetric two-class optimum)."""
    if n_classes == 2:
        coef = np.concatenate([-coef / 2, coef / 2], axis=-2)
        intercept = np.concatenate([-intercept / 2, intercept / 2], axis=-1)
    return np.swapaxes(coef, -1, -2), intercept


class _Base(LinearClassifierMixin, ClassifierMixin, BaseEstimator):
    """Shared validation, label encoding and prediction."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

    def _validate_fit(self, X, y, sample_weight):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=False,
            dtype=[np.float64, np.float32],
            order="C",
            accept_large_sparse=False,
        )
        check_classification_targets(y)
        encoder = LabelEncoder()
        y_index = encoder.fit_transform(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {self.classes_[0]!r}"
            )
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        weights = _weights(y_index, self.classes_, self.class_weight, sample_weight)
        return X, y_index, weights

    def decision_function(self, X):
        """Scores (n,) for two classes, (n, k) for more."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=False, reset=False)
        scores = X @ self.coef_.T + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict_proba(self, X):
        """Class probabilities (n, k), columns in `classes_` order."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = expit(scores)
            return np.column_stack([1 - p, p])
        return softmax(scores, axis=1)

    def predict_log_proba(self, X):
        """Log class probabilities (n, k)."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            scores = np.column_stack([np.zeros_like(scores), scores])
        return log_softmax(scores, axis=1)


class LogisticRegression(_Base):
    """Multinomial logistic regression with scikit-learn's lbfgs optimum.

    Args:
      C: inverse regularisation strength (> 0).
      fit_intercept: fit an unpenalised bias.
      tol: stop when the max |gradient| of the normalised objective <= tol.
      max_iter: L-BFGS iterations.
      class_weight: None, "balanced" or a dict {label: weight}.
      warm_start: start from the previous `coef_`/`intercept_`.
      verbose: unused (kept for scikit-learn's API).
      mesh: a `jax.sharding.Mesh` with a 'data' axis; None = all devices.

    Attributes:
      classes_ (k,), coef_ (1, d) for two classes else (k, d), intercept_ (1,)
      or (k,), n_iter_ (1,), n_features_in_, feature_names_in_ (pandas input).
    """

    _parameter_constraints: dict = {
        "C": [Interval(Real, 0, None, closed="neither")],
        "fit_intercept": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "mesh": [None, object],
    }

    def __init__(
        self,
        C: float = 1.0,
        *,
        fit_intercept: bool = True,
        tol: float = 1e-4,
        max_iter: int = 100,
        class_weight: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
        mesh: Any = None,
    ) -> None:
        self.C = C
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.verbose = verbose
        self.mesh = mesh

    def fit(self, X, y, sample_weight=None) -> LogisticRegression:
        """Fit on X (n, d), labels y (n,), optional sample_weight (n,)."""
        self._validate_params()
        X, y_index, weights = self._validate_fit(X, y, sample_weight)
        q = len(self.classes_)
        start = None
        if (
            self.warm_start
            and hasattr(self, "coef_")
            and self.coef_.shape == ((1 if q == 2 else q), X.shape[1])
        ):
            W, b = _to_engine(self.coef_, self.intercept_, q)
            from jaxsoft.model import Params

            start = Params(W=W.astype(X.dtype), b=b.astype(X.dtype))
        l2 = _l2_of(np.array([self.C]), float(weights.sum()), q)
        sol = _solve(
            X,
            y_index,
            l2,
            q,
            weights,
            row_sets=None,
            start=start,
            tol=self.tol,
            max_iter=self.max_iter,
            fit_intercept=self.fit_intercept,
            mesh=self.mesh,
        )
        coef, intercept = _to_sklearn(
            np.asarray(sol.params.W[0, 0]), np.asarray(sol.params.b[0, 0]), q
        )
        self.coef_ = np.asarray(coef, dtype=X.dtype)
        self.intercept_ = np.asarray(intercept, dtype=X.dtype)
        if not self.fit_intercept:
            self.intercept_ = np.zeros_like(self.intercept_)
        self.n_iter_ = np.asarray([int(sol.iterations[0, 0])], dtype=np.int32)
        return self


class LogisticRegressionCV(_Base):
    """Logistic regression with C chosen by cross-validation.

    Every fold and every C are solved together in one engine call; the
    held-out folds are scored on the host with scikit-learn's scorer.

    Args:
      Cs: an int (``np.logspace(-4, 4, Cs)``) or a sequence of Cs (L,).
      cv: None (stratified 5-fold), an int or any splitter.
      scoring: None (accuracy) or any scikit-learn scoring.
      refit: refit on all rows with the best C (else average the folds' best).
      class_weight, tol, max_iter, fit_intercept, mesh: as `LogisticRegression`.

    Attributes (k' = 1 for two classes else k; F folds):
      Cs_ (L,), C_ (k,), scores_ {class: (F, L)}, coefs_paths_
      {class: (F, L, k', d + fit_intercept)}, n_iter_ (1, F, L), coef_, intercept_.
    """

    _parameter_constraints: dict = {
        "Cs": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "fit_intercept": ["boolean"],
        "cv": ["cv_object"],
        "scoring": [StrOptions(set()), callable, None, str],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "refit": ["boolean"],
        "verbose": ["verbose"],
        "mesh": [None, object],
    }

    def __init__(
        self,
        Cs: int | Any = 10,
        *,
        fit_intercept: bool = True,
        cv: Any = None,
        scoring: Any = None,
        tol: float = 1e-4,
        max_iter: int = 100,
        class_weight: Any = None,
        refit: bool = True,
        verbose: int = 0,
        mesh: Any = None,
    ) -> None:
        self.Cs = Cs
        self.fit_intercept = fit_intercept
        self.cv = cv
        self.scoring = scoring
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.refit = refit
        self.verbose = verbose
        self.mesh = mesh

    def fit(self, X, y, sample_weight=None, **params) -> LogisticRegressionCV:
        """Fit on X (n, d), labels y (n,), optional sample_weight (n,)."""
        self._validate_params()
        X, y_index, weights = self._validate_fit(X, y, sample_weight)
        n, d = X.shape
        q = len(self.classes_)
        Cs = (
            np.logspace(-4, 4, self.Cs)
            if isinstance(self.Cs, Integral)
            else np.asarray(self.Cs, dtype=np.float64)
        )
        self.Cs_ = Cs
        cv = check_cv(self.cv, y_index, classifier=True)
        folds = list(cv.split(X, y_index, **params))
        row_sets = np.zeros((len(folds), n), dtype=bool)
        for g, (train, _) in enumerate(folds):
            row_sets[g, train] = True
        # The folds' weight sums differ: one l2 per fold is not a single grid,
        # so each fold's problem is rescaled to the common grid by its weights.
        totals = np.array([weights[train].sum() for train, _ in folds])
        scale = totals / totals.mean()
        l2 = _l2_of(Cs, float(totals.mean()), q)
        # Rescale rows so that fold g's objective with strength l2 equals the
        # scikit-learn objective with C: multiply that fold's penalty by
        # 1/scale_g, achieved by solving fold-specific grids separately.
        sols = []
        if np.allclose(scale, 1.0, rtol=1e-12):
            sols.append(
                (
                    slice(None),
                    _solve(
                        X,
                        y_index,
                        l2,
                        q,
                        weights,
                        row_sets=row_sets,
                        start=None,
                        tol=self.tol,
                        max_iter=self.max_iter,
                        fit_intercept=self.fit_intercept,
                        mesh=self.mesh,
                    ),
                )
            )
        else:
            for g in range(len(folds)):
                sols.append(
                    (
                        slice(g, g + 1),
                        _solve(
                            X,
                            y_index,
                            _l2_of(Cs, float(totals[g]), q),
                            q,
                            weights,
                            row_sets=row_sets[g : g + 1],
                            start=None,
                            tol=self.tol,
                            max_iter=self.max_iter,
                            fit_intercept=self.fit_intercept,
                            mesh=self.mesh,
                        ),
                    )
                )
        G, L = len(folds), len(Cs)
        k = 1 if q == 2 else q
        coefs = np.zeros((G, L, k, d), dtype=X.dtype)
        intercepts = np.zeros((G, L, k), dtype=X.dtype)
        n_iter = np.zeros((G, L), dtype=np.int32)
        for where, sol in sols:
            c, b = _to_sklearn(np.asarray(sol.params.W), np.asarray(sol.params.b), q)
            coefs[where] = c
            intercepts[where] = b if self.fit_intercept else 0.0
            n_iter[where] = sol.iterations
        scorer = check_scoring(self, scoring=self.scoring)
        scores = np.zeros((G, L))
        probe = LogisticRegression(fit_intercept=self.fit_intercept)
        probe.classes_ = self.classes_
        probe.n_features_in_ = d
        if hasattr(self, "feature_names_in_"):
            probe.feature_names_in_ = self.feature_names_in_
        y_labels = self.classes_[y_index]
        for g, (_, test) in enumerate(folds):
            for i in range(L):
                probe.coef_ = coefs[g, i]
                probe.intercept_ = intercepts[g, i]
                scores[g, i] = scorer(probe, X[test], y_labels[test])
        best = int(np.argmax(scores.mean(axis=0)))
        if self.refit:
            C = Cs[best]
            sol = _solve(
                X,
                y_index,
                _l2_of(np.array([C]), float(weights.sum()), q),
                q,
                weights,
                row_sets=None,
                start=None,
                tol=self.tol,
                max_iter=self.max_iter,
                fit_intercept=self.fit_intercept,
                mesh=self.mesh,
            )
            c, b = _to_sklearn(
                np.asarray(sol.params.W[0, 0]), np.asarray(sol.params.b[0, 0]), q
            )
            self.coef_ = np.asarray(c, dtype=X.dtype)
            self.intercept_ = np.asarray(b if self.fit_intercept else 0 * b, X.dtype)
        else:
            per_fold = np.argmax(scores, axis=1)
            C = float(np.mean(Cs[per_fold]))
            self.coef_ = np.mean(coefs[np.arange(G), per_fold], axis=0)
            self.intercept_ = np.mean(intercepts[np.arange(G), per_fold], axis=0)
        self.C_ = np.full(len(self.classes_), C)
        self.l1_ratio_ = np.full(len(self.classes_), None)
        paths = coefs
        if self.fit_intercept:
            paths = np.concatenate([coefs, intercepts[..., None]], axis=-1)
        if q == 2:
            paths = paths[:, :, 0, :]
        self.coefs_paths_ = {c: paths for c in self.classes_}
        self.scores_ = {c: scores for c in self.classes_}
        self.n_iter_ = n_iter[None]
        return self
