"""`LogisticRegressionCV`: every fold and strength of a grid in one engine call."""

from __future__ import annotations

import numbers
import warnings
from numbers import Integral

import numpy as np
from sklearn.base import _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import get_scorer, get_scorer_names
from sklearn.model_selection import check_cv
from sklearn.utils import metadata_routing
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
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
    validate_data,
)

from jaxsoft.linear_model._fitting import (
    _check_liblinear,
    _check_solver,
    _convergence_message,
    _fit_heads,
    _fold_scorer,
    _grid_of_cs,
    _l1_fraction,
    _prepare_targets,
)
from jaxsoft.linear_model._logistic import LogisticRegression

__all__ = ["LogisticRegressionCV"]


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
