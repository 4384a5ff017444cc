"""jaxsoft.linear_model.LogisticRegression against scikit-learn's lbfgs fit."""

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from scipy.special import log_softmax, logsumexp
from sklearn import datasets
from sklearn import linear_model as sk
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from jaxsoft.linear_model import LogisticRegression, LogisticRegressionCV

LOADERS = {
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
    "digits": datasets.load_digits,
}


def _data(name):
    X, y = LOADERS[name](return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float64), y


def sk_objective(coef, intercept, X, y, C, s=None):
    """scikit-learn's lbfgs objective, in NumPy float64 (independent of both fits)."""
    s = np.ones(len(y)) if s is None else np.asarray(s, np.float64)
    classes = np.unique(y)
    z = X @ coef.T + intercept
    if len(classes) == 2:
        t = np.where(y == classes[1], 1.0, -1.0)
        loss = np.logaddexp(0.0, -t * z[:, 0])
    else:
        codes = np.searchsorted(classes, y)
        loss = logsumexp(z, axis=1) - z[np.arange(len(y)), codes]
    S = s.sum()
    return (s @ loss) / S + (coef**2).sum() / (2 * C * S)


@pytest.mark.parametrize("name", sorted(LOADERS))
@pytest.mark.parametrize("C", [0.1, 1.0])
def test_agrees_with_scikit_learn(name, C):
    X, y = _data(name)
    ref = sk.LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X, y)
    # With room for its float64 polish, jaxsoft reaches the optimum itself.
    ours = LogisticRegression(C=C, max_iter=1000).fit(X, y)
    f_ref = sk_objective(ref.coef_, ref.intercept_, X, y, C)
    f_ours = sk_objective(ours.coef_, ours.intercept_, X, y, C)
    assert abs(f_ours - f_ref) <= 1e-6 * abs(f_ref)
    exact = ref.predict_proba(X)
    np.testing.assert_allclose(ours.predict_proba(X), exact, atol=1e-5)
    # With the defaults (tol=1e-4, max_iter=100), at least as close to it as
    # scikit-learn's own default fit.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = sk.LogisticRegression(C=C).fit(X, y).predict_proba(X)
    default = LogisticRegression(C=C).fit(X, y).predict_proba(X)
    assert np.abs(default - exact).max() <= np.abs(theirs - exact).max() + 1e-9
    assert ours.coef_.shape == ref.coef_.shape
    assert ours.intercept_.shape == ref.intercept_.shape
    assert ours.decision_function(X).shape == ref.decision_function(X).shape
    np.testing.assert_array_equal(ours.classes_, ref.classes_)
    assert ours.n_iter_.shape == (1,)
    np.testing.assert_allclose(
        ours.predict_log_proba(X),
        log_softmax(np.log(ours.predict_proba(X)), axis=1),
        atol=1e-12,
    )


def test_objective_detects_a_worse_fit():
    X, y = _data("iris")
    ref = sk.LogisticRegression(tol=1e-10, max_iter=10_000).fit(X, y)
    f = sk_objective(ref.coef_, ref.intercept_, X, y, 1.0)
    g = sk_objective(ref.coef_ * 1.01, ref.intercept_, X, y, 1.0)
    assert g - f > 1e-6 * f


def test_float32_input():
    X, y = _data("wine")
    ref = sk.LogisticRegression(tol=1e-10, max_iter=10_000).fit(X, y)
    ours = LogisticRegression(max_iter=1000).fit(X.astype(np.float32), y)
    f_ref = sk_objective(ref.coef_, ref.intercept_, X, y, 1.0)
    f_ours = sk_objective(ours.coef_, ours.intercept_, X, y, 1.0)
    assert abs(f_ours - f_ref) <= 1e-4 * f_ref


@pytest.mark.parametrize("name", ["iris", "breast_cancer"])
def test_sample_weights_equal_repeated_rows(name):
    X, y = _data(name)
    rng = np.random.default_rng(0)
    w = rng.integers(0, 4, len(y))
    weighted = LogisticRegression(C=0.5).fit(X, y, sample_weight=w)
    repeated = LogisticRegression(C=0.5).fit(np.repeat(X, w, 0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-6, atol=1e-9
    )
    ref = sk.LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000)
    ref.fit(X, y, sample_weight=w)
    f_ref = sk_objective(ref.coef_, ref.intercept_, X, y, 0.5, w)
    f_ours = sk_objective(weighted.coef_, weighted.intercept_, X, y, 0.5, w)
    assert abs(f_ours - f_ref) <= 1e-6 * f_ref


@pytest.mark.parametrize("name", ["wine", "breast_cancer"])
def test_class_weight_balanced(name):
    X, y = _data(name)
    ref = sk.LogisticRegression(class_weight="balanced", tol=1e-10, max_iter=10_000)
    ref.fit(X, y)
    ours = LogisticRegression(class_weight="balanced").fit(X, y)
    counts = np.bincount(y)
    s = (len(y) / (len(counts) * counts))[y]
    f_ref = sk_objective(ref.coef_, ref.intercept_, X, y, 1.0, s)
    f_ours = sk_objective(ours.coef_, ours.intercept_, X, y, 1.0, s)
    assert abs(f_ours - f_ref) <= 1e-6 * f_ref
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-4)


@pytest.mark.parametrize(
    "labels", [np.array(["setosa", "versicolor", "virginica"]), np.array([-1, 1, 7])]
)
def test_any_labels(labels):
    X, y = _data("iris")
    yy = labels[y]
    ours = LogisticRegression().fit(X, yy)
    np.testing.assert_array_equal(ours.classes_, labels)
    assert set(ours.predict(X)) <= set(labels)
    assert ours.score(X, yy) > 0.9
    if yy.dtype.kind == "U":
        obj = LogisticRegression().fit(X, yy.astype(object))
        np.testing.assert_array_equal(obj.predict(X), ours.predict(X))


def test_binary_minus_one_one():
    X, y = _data("breast_cancer")
    ours = LogisticRegression().fit(X, np.where(y == 1, 1, -1))
    np.testing.assert_array_equal(ours.classes_, [-1, 1])
    assert ours.coef_.shape == (1, X.shape[1])
    assert ours.decision_function(X).shape == (len(y),)


def test_pickle_clone_pipeline_gridsearch():
    X, y = LOADERS["iris"](return_X_y=True)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    pipe.fit(X, y)
    again = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(again.predict_proba(X), pipe.predict_proba(X))
    est = pipe[-1]
    assert isinstance(est.coef_, np.ndarray) and isinstance(est.intercept_, np.ndarray)
    c = clone(est)
    assert not hasattr(c, "coef_") and c.get_params() == est.get_params()
    grid = GridSearchCV(pipe, {"logisticregression__C": [0.01, 1.0]}, cv=3).fit(X, y)
    assert grid.best_params_["logisticregression__C"] in (0.01, 1.0)
    assert grid.score(X, y) > 0.9


def test_warm_start_starts_from_the_previous_fit():
    X, y = _data("iris")
    est = LogisticRegression(warm_start=True, max_iter=1000).fit(X, y)
    first, n_first = est.coef_.copy(), est.n_iter_[0]
    est.fit(X, y)
    assert est.n_iter_[0] < n_first
    np.testing.assert_allclose(est.coef_, first, atol=1e-6)


def test_not_converged_warns():
    from sklearn.exceptions import ConvergenceWarning

    X, y = _data("digits")
    with pytest.warns(ConvergenceWarning):
        LogisticRegression(max_iter=2).fit(X, y)


def test_no_intercept():
    X, y = _data("wine")
    ref = sk.LogisticRegression(fit_intercept=False, tol=1e-10, max_iter=10_000)
    ref.fit(X, y)
    ours = LogisticRegression(fit_intercept=False).fit(X, y)
    np.testing.assert_array_equal(ours.intercept_, 0.0)
    f_ref = sk_objective(ref.coef_, ref.intercept_, X, y, 1.0)
    f_ours = sk_objective(ours.coef_, ours.intercept_, X, y, 1.0)
    assert abs(f_ours - f_ref) <= 1e-6 * f_ref


def test_bad_input_errors():
    X, y = _data("iris")
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LogisticRegression().fit(bad, y)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        LogisticRegression().fit(bad, y)
    with pytest.raises(ValueError, match="2D array"):
        LogisticRegression().fit(X[:, 0], y)
    with pytest.raises(ValueError, match="Unknown label type"):
        LogisticRegression().fit(X, y + 0.5)
    with pytest.raises(ValueError, match="class"):
        LogisticRegression().fit(X, np.zeros_like(y))
    with pytest.raises(ValueError, match=r"[Nn]egative"):
        LogisticRegression().fit(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="Complex"):
        LogisticRegression().fit(X + 1j, y)
    with pytest.raises(ValueError, match="C"):
        LogisticRegression(C=-1.0).fit(X, y)
    est = LogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :2])


def test_pandas_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = _data("iris")
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    est = LogisticRegression().fit(df, y)
    np.testing.assert_array_equal(est.feature_names_in_, ["a", "b", "c", "d"])
    assert est.n_features_in_ == 4


# LogisticRegressionCV: the same folds, scores and choice of C as scikit-learn.


def _sk_cv(**kw):
    return sk.LogisticRegressionCV(
        scoring=kw.pop("scoring", None), l1_ratios=None, **kw
    )


@pytest.mark.parametrize("name", ["iris", "breast_cancer"])
def test_cv_chooses_scikit_learns_c_with_its_attributes(name):

    X, y = _data(name)
    kw = dict(Cs=5, cv=4, max_iter=1000)
    ref = _sk_cv(use_legacy_attributes=True, **kw).fit(X, y)
    ours = LogisticRegressionCV(**kw).fit(X, y)
    np.testing.assert_array_equal(ours.Cs_, ref.Cs_)
    np.testing.assert_array_equal(ours.C_, ref.C_)
    assert sorted(ours.scores_) == sorted(ref.scores_)
    for key in ref.scores_:
        assert ours.scores_[key].shape == ref.scores_[key].shape
        assert ours.coefs_paths_[key].shape == ref.coefs_paths_[key].shape
        # Held-out accuracy per fold and C: at most one test row apart.
        fold_rows = len(y) / 4
        assert np.abs(ours.scores_[key] - ref.scores_[key]).max() <= 1.01 / fold_rows
    assert ours.n_iter_.shape == ref.n_iter_.shape
    assert ours.coef_.shape == ref.coef_.shape
    # The refit is the fit at C_ (which scikit-learn's own fit agrees with).
    best = LogisticRegression(C=float(ours.C_[0]), max_iter=1000).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), best.predict_proba(X), atol=1e-6)
    # scikit-learn's refit stops at its tol: jaxsoft's is at least as low.
    C = float(ref.C_[0])
    got = sk_objective(ours.coef_, ours.intercept_, X, y, C)
    assert got <= sk_objective(ref.coef_, ref.intercept_, X, y, C) + 1e-9


@pytest.mark.parametrize("name", ["iris", "breast_cancer"])
def test_cv_default_scores_are_scikit_learns_accuracy_scorer(name):
    """The default scoring (accuracy, computed directly) against scikit-learn's
    own "accuracy" scorer on the same fold fits, with sample weights."""

    X, y = _data(name)
    weights = np.random.default_rng(0).uniform(0.2, 3.0, len(y))
    kw = dict(Cs=4, cv=3, max_iter=1000, use_legacy_attributes=False)
    default = LogisticRegressionCV(**kw).fit(X, y, sample_weight=weights)
    scorer = LogisticRegressionCV(scoring="accuracy", **kw)
    scorer.fit(X, y, sample_weight=weights)
    np.testing.assert_array_equal(default.coefs_paths_, scorer.coefs_paths_)
    np.testing.assert_allclose(default.scores_, scorer.scores_, rtol=1e-12)
    assert default.C_ == scorer.C_


def test_cv_fold_paths_are_each_folds_optimum():
    """Each (fold, C) path entry minimises scikit-learn's objective on that fold."""
    from sklearn.model_selection import StratifiedKFold

    X, y = _data("wine")
    rng = np.random.default_rng(0)
    s = rng.uniform(0.2, 3.0, len(y))
    folds = StratifiedKFold(3)
    ours = LogisticRegressionCV(Cs=[0.05, 1.0], cv=folds, max_iter=1000)
    ours.fit(X, y, sample_weight=s)
    for g, (train, _) in enumerate(folds.split(X, y)):
        for i, C in enumerate([0.05, 1.0]):
            coef = np.stack([ours.coefs_paths_[c][g, i] for c in ours.classes_])
            ref = sk.LogisticRegression(C=C, tol=1e-10, max_iter=10_000)
            ref.fit(X[train], y[train], sample_weight=s[train])
            np.testing.assert_allclose(coef[:, :-1], ref.coef_, atol=1e-4)
            fold = (X[train], y[train], C, s[train])
            got = sk_objective(coef[:, :-1], coef[:, -1], *fold)
            assert got <= sk_objective(ref.coef_, ref.intercept_, *fold) + 1e-9


def test_cv_new_attributes_and_no_refit():

    X, y = _data("breast_cancer")
    kw = dict(Cs=4, cv=3, max_iter=1000, refit=False)
    ref = _sk_cv(use_legacy_attributes=False, **kw).fit(X, y)
    ours = LogisticRegressionCV(use_legacy_attributes=False, **kw).fit(X, y)
    assert isinstance(ours.C_, float) and pytest.approx(ref.C_) == ours.C_
    for attr in ("scores_", "coefs_paths_", "n_iter_"):
        assert getattr(ours, attr).shape == getattr(ref, attr).shape, attr
    # Without a refit: the mean of each fold's best model.
    best = np.argmax(ours.scores_[:, 0], axis=1)
    mean = ours.coefs_paths_[np.arange(3), 0, best].mean(axis=0)
    np.testing.assert_allclose(ours.coef_, mean[:, :-1], rtol=1e-6)


# The drop-in as written (issue 28): every parameter, every solver name, L1 and
# elastic net, liblinear's objective, float32, sparsify.


def sk_penalised(coef, intercept, X, y, C, r=0.0, s=None):
    """scikit-learn's objective with its elastic-net penalty (NumPy float64):
    mean weighted loss + ((1 - r)/2 ||coef||^2 + r ||coef||_1) / (C S)."""
    s = np.ones(len(y)) if s is None else np.asarray(s, np.float64)
    coef = np.asarray(coef, np.float64)
    smooth = sk_objective(coef, intercept, X, y, C / (1.0 - r), s) if r < 1 else None
    if smooth is None:
        smooth = sk_objective(coef, intercept, X, y, np.inf, s)
    return smooth + r * np.abs(coef).sum() / (C * s.sum())


def liblinear_objective(coef, intercept, X, y, C, scaling, l1):
    """liblinear's objective over C S: the mean loss plus the penalty of
    [coef, intercept / scaling] (the intercept penalised)."""
    w = np.append(np.ravel(coef), np.ravel(intercept) / scaling)
    loss = sk_objective(coef, intercept, X, y, np.inf)
    penalty = np.abs(w).sum() if l1 else (w**2).sum() / 2
    return loss + penalty / (C * len(y))


def test_the_penalised_objective_detects_a_worse_fit():
    X, y = _data("wine")
    ref = sk.LogisticRegression(C=0.1, l1_ratio=1, solver="saga", tol=1e-10)
    ref.set_params(max_iter=100_000).fit(X, y)
    f = sk_penalised(ref.coef_, ref.intercept_, X, y, 0.1, 1.0)
    moved = ref.coef_.copy()
    moved[moved == 0] = 1e-3  # leaving the zeros costs more than 1e-6
    assert sk_penalised(moved, ref.intercept_, X, y, 0.1, 1.0) - f > 1e-6 * f


def test_signatures_are_scikit_learns_plus_mesh():
    import inspect

    for ours, theirs in [
        (LogisticRegression, sk.LogisticRegression),
        (LogisticRegressionCV, sk.LogisticRegressionCV),
    ]:
        mine = list(inspect.signature(ours).parameters.values())
        assert mine[-1].name == "mesh" and mine[-1].default is None
        expected = list(inspect.signature(theirs).parameters.values())
        assert [(p.name, p.default, p.kind) for p in mine[:-1]] == [
            (p.name, p.default, p.kind) for p in expected
        ]


SOLVERS = ["lbfgs", "newton-cg", "newton-cholesky", "sag", "saga"]


@pytest.mark.parametrize("name", ["iris", "breast_cancer"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_every_solver_name_reaches_scikit_learns_optimum(name, solver):
    """Each name minimises scikit-learn's one L2 objective: against
    scikit-learn's newton-cholesky (exact Newton steps) at tol=1e-10."""
    X, y = _data(name)
    ref = sk.LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-10).fit(X, y)
    ours = LogisticRegression(C=0.5, solver=solver, max_iter=1000).fit(X, y)
    f_ref = sk_objective(ref.coef_, ref.intercept_, X, y, 0.5)
    f_ours = sk_objective(ours.coef_, ours.intercept_, X, y, 0.5)
    assert abs(f_ours - f_ref) <= 1e-6 * f_ref
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-5)
    assert ours.n_iter_.shape == (1,) and ours.n_iter_.dtype == np.int32


@pytest.mark.parametrize("solver", SOLVERS)
def test_no_penalty_with_c_inf(solver):
    """C=np.inf: the unpenalised maximum likelihood (wine is not separable
    on two features), as scikit-learn's newton-cholesky finds it."""
    X, y = _data("wine")
    X = X[:, :2]
    ref = sk.LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-10)
    ref.fit(X, y)
    ours = LogisticRegression(C=np.inf, solver=solver, max_iter=1000).fit(X, y)
    f_ref = sk_objective(ref.coef_, ref.intercept_, X, y, np.inf)
    f_ours = sk_objective(ours.coef_, ours.intercept_, X, y, np.inf)
    assert abs(f_ours - f_ref) <= 1e-7 * f_ref
    np.testing.assert_allclose(ours.coef_.sum(axis=0), 0.0, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "C", "scaling"), [("breast_cancer", 0.1, 1.0), ("iris2", 1.0, 10.0)]
)
@pytest.mark.parametrize(
    ("l1_ratio", "dual"), [(0.0, False), (0.0, True), (1.0, False)]
)
def test_liblinear_minimises_its_objective_with_the_penalised_intercept(
    name, C, scaling, l1_ratio, dual
):
    if name == "iris2":  # two classes that overlap
        X, y = _data("iris")
        X, y = X[y > 0], y[y > 0]
    else:
        X, y = _data(name)
    kw = dict(C=C, intercept_scaling=scaling, l1_ratio=l1_ratio, dual=dual)
    ref = sk.LogisticRegression(solver="liblinear", tol=1e-12, max_iter=100_000, **kw)
    ref.fit(X, y)
    ours = LogisticRegression(solver="liblinear", max_iter=1000, **kw).fit(X, y)
    l1 = l1_ratio == 1.0
    f_ref = liblinear_objective(ref.coef_, ref.intercept_, X, y, C, scaling, l1)
    f_ours = liblinear_objective(ours.coef_, ours.intercept_, X, y, C, scaling, l1)
    assert abs(f_ours - f_ref) <= 1e-6 * f_ref
    # Not the objective with a free intercept: lbfgs's optimum scores worse.
    free = LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", max_iter=1000)
    free.fit(X, y)
    f_free = liblinear_objective(free.coef_, free.intercept_, X, y, C, scaling, l1)
    assert f_free > f_ours + 1e-6 * f_ours
    if l1:
        np.testing.assert_array_equal(ours.coef_ == 0, ref.coef_ == 0)
    assert ours.coef_.dtype == ours.intercept_.dtype == np.float64


def _subsample(name, rows):
    X, y = _data(name)
    if rows is None:
        return X, y
    keep = np.random.default_rng(0).permutation(len(y))[:rows]
    return X[keep], y[keep]


@pytest.mark.parametrize(
    ("name", "rows", "C", "l1_ratio"),
    [
        ("iris", None, 0.1, 1.0),
        ("iris", None, 1.0, 0.5),
        ("wine", None, 0.1, 1.0),
        ("wine", None, 1.0, 0.5),
        ("breast_cancer", None, 0.1, 1.0),
        ("breast_cancer", None, 0.1, 0.5),
        # saga at tol=1e-10 takes 5 s on all of digits' 1,797 rows
        ("digits", 300, 0.1, 1.0),
        ("digits", 300, 0.1, 0.5),
    ],
)
def test_l1_and_elastic_net_reach_sagas_optimum_and_zeros(name, rows, C, l1_ratio):
    X, y = _subsample(name, rows)
    kw = dict(C=C, l1_ratio=l1_ratio, solver="saga")
    ref = sk.LogisticRegression(tol=1e-10, max_iter=100_000, **kw).fit(X, y)
    ours = LogisticRegression(tol=1e-8, max_iter=1000, **kw).fit(X, y)
    f_ref = sk_penalised(ref.coef_, ref.intercept_, X, y, C, l1_ratio)
    f_ours = sk_penalised(ours.coef_, ours.intercept_, X, y, C, l1_ratio)
    assert abs(f_ours - f_ref) <= 1e-6 * f_ref
    assert np.any(ref.coef_ == 0)
    np.testing.assert_array_equal(ours.coef_ == 0, ref.coef_ == 0)


def test_l1_penalty_and_l1_ratio_one_are_one_objective():
    X, y = _data("wine")
    with pytest.warns(FutureWarning, match="'penalty' was deprecated"):
        old = LogisticRegression(penalty="l1", solver="saga", C=0.1).fit(X, y)
    new = LogisticRegression(l1_ratio=1, solver="saga", C=0.1).fit(X, y)
    np.testing.assert_array_equal(old.coef_, new.coef_)


@pytest.mark.parametrize("solver", [*SOLVERS, "liblinear"])
def test_float32_in_float32_out(solver):
    X, y = _data("breast_cancer")
    ours = LogisticRegression(solver=solver).fit(X.astype(np.float32), y)
    expected = np.float64 if solver == "liblinear" else np.float32  # as sklearn
    assert ours.coef_.dtype == expected and ours.intercept_.dtype == expected
    ref = sk.LogisticRegression(solver=solver).fit(X.astype(np.float32), y)
    assert ref.coef_.dtype == ours.coef_.dtype


def test_cv_validates_to_float64_as_scikit_learn():

    X, y = _data("iris")
    kw = dict(Cs=2, cv=3, l1_ratios=(0,), scoring=None, use_legacy_attributes=False)
    ours = LogisticRegressionCV(**kw).fit(X.astype(np.float32), y)
    ref = sk.LogisticRegressionCV(**kw).fit(X.astype(np.float32), y)
    assert ours.coef_.dtype == ref.coef_.dtype == np.float64


def test_sparsify_densify_and_sparse_predictions():
    import scipy.sparse as sp

    X, y = _data("wine")
    est = LogisticRegression(C=0.05, l1_ratio=1, solver="saga").fit(X, y)
    assert np.mean(est.coef_ == 0) > 0.3
    dense = est.decision_function(X)
    proba = est.predict_proba(X)
    est.sparsify()
    assert sp.issparse(est.coef_)
    assert est.coef_.nnz == np.count_nonzero(est.densify().coef_)
    est.sparsify()
    np.testing.assert_allclose(est.decision_function(X), dense, rtol=1e-12)
    np.testing.assert_allclose(est.decision_function(sp.csr_matrix(X)), dense)
    np.testing.assert_allclose(est.predict_proba(X), proba, rtol=1e-12)
    est.densify()
    assert isinstance(est.coef_, np.ndarray)
    np.testing.assert_allclose(est.decision_function(sp.csr_matrix(X)), dense)


def test_parameter_validation_and_refusals_as_scikit_learn():
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = _data("iris")
    Xb, yb = X[y > 0], y[y > 0]
    for bad in [
        dict(C=0.0),
        dict(l1_ratio=1.5),
        dict(solver="adam"),
        dict(intercept_scaling=0),
        dict(penalty="l3"),
        dict(n_jobs=1.5),
        dict(random_state="seed"),
    ]:
        with pytest.raises(InvalidParameterError):
            LogisticRegression(**bad).fit(Xb, yb)
    refusals = [
        (dict(l1_ratio=1, solver="lbfgs"), "Solver lbfgs supports only 'l2' or None"),
        (dict(l1_ratio=0.5, solver="liblinear"), "Only 'saga' solver supports"),
        (dict(dual=True, solver="newton-cg"), "supports only dual=False"),
        (dict(C=np.inf, solver="liblinear"), "penalty=None is not supported"),
        (dict(l1_ratio=1, dual=True, solver="liblinear"), "dual=True"),
    ]
    for params, message in refusals:
        with pytest.raises(ValueError, match=message):
            LogisticRegression(**params).fit(Xb, yb)
        with pytest.raises(ValueError, match=message):
            sk.LogisticRegression(**params).fit(Xb, yb)
    with pytest.raises(ValueError, match="does not support multiclass"):
        LogisticRegression(solver="liblinear").fit(X, y)
    with pytest.raises(ValueError, match="l1_ratios must be an array-like"):
        LogisticRegressionCV(l1_ratios=[0.5, 2], solver="saga").fit(Xb, yb)
    with pytest.warns(FutureWarning, match="'n_jobs' has no effect"):
        LogisticRegression(n_jobs=2).fit(Xb, yb)
    with (
        pytest.warns(UserWarning, match="Setting penalty=None will ignore the C"),
        pytest.warns(FutureWarning, match="'penalty' was deprecated"),
    ):
        LogisticRegression(penalty=None, C=2.0).fit(Xb, yb)
    with pytest.warns(FutureWarning, match="default value for l1_ratios"):
        LogisticRegressionCV(Cs=2, scoring=None, use_legacy_attributes=False).fit(
            Xb, yb
        )
    # random_state has no effect: the solver is deterministic
    a = LogisticRegression(solver="saga", random_state=0).fit(Xb, yb)
    b = LogisticRegression(solver="saga", random_state=1).fit(Xb, yb)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_convergence_warning_names_the_solver_as_scikit_learn():
    X, y = _data("digits")
    for solver, message in [
        ("lbfgs", "lbfgs failed to converge"),
        ("sag", "The max_iter was reached"),
        ("newton-cholesky", "Newton solver did not converge"),
    ]:
        with pytest.warns(ConvergenceWarning, match=message):
            est = LogisticRegression(solver=solver, max_iter=2).fit(X, y)
        assert est.n_iter_[0] == 2


@pytest.mark.parametrize(
    ("name", "legacy"),
    [("iris", False), ("wine", True), ("iris2", True), ("iris2", False)],
)
def test_cv_over_l1_ratios_chooses_scikit_learns_pair(name, legacy):
    """Folds x Cs x l1_ratios: scikit-learn's saga CV at a tight tol gives the
    same held-out log-losses, the same (C, l1_ratio) and attribute shapes.
    (Not at Cs whose optimum is all zeros: saga's stopping rule, a relative
    change of the coefficients, stops it there after one epoch, far from
    the intercepts' optimum.)"""

    X, y = _data(name[:4] if name == "iris2" else name)
    if name == "iris2":
        X, y = X[y > 0], y[y > 0]
    kw = dict(
        Cs=[0.1, 1.0, 10.0],
        l1_ratios=[0.2, 1.0],
        cv=3,
        solver="saga",
        scoring="neg_log_loss",
        use_legacy_attributes=legacy,
    )
    ref = sk.LogisticRegressionCV(tol=1e-8, max_iter=100_000, **kw).fit(X, y)
    ours = LogisticRegressionCV(max_iter=1000, **kw).fit(X, y)
    np.testing.assert_array_equal(ours.l1_ratios_, ref.l1_ratios_)
    np.testing.assert_array_equal(ours.C_, ref.C_)
    np.testing.assert_array_equal(ours.l1_ratio_, ref.l1_ratio_)
    if legacy:
        assert sorted(ours.scores_) == sorted(ref.scores_)
        pairs = [(ours.scores_[c], ref.scores_[c]) for c in ref.scores_]
        pairs += [(ours.coefs_paths_[c], ref.coefs_paths_[c]) for c in ref.scores_]
    else:
        pairs = [(ours.scores_, ref.scores_), (ours.coefs_paths_, ref.coefs_paths_)]
    for got, want in pairs:
        assert got.shape == want.shape
    # saga at tol=1e-8 is that close to the optimum at C=10 (wine: 5e-5)
    np.testing.assert_allclose(pairs[0][0], pairs[0][1], rtol=1e-4, atol=1e-4)
    assert ours.n_iter_.shape == ref.n_iter_.shape
    assert ours.coef_.shape == ref.coef_.shape
    r, C = float(np.ravel(ours.l1_ratio_)[0]), float(np.ravel(ours.C_)[0])
    f_ours = sk_penalised(ours.coef_, ours.intercept_, X, y, C, r)
    f_ref = sk_penalised(ref.coef_, ref.intercept_, X, y, C, r)
    assert abs(f_ours - f_ref) <= 1e-6 * f_ref


# Sparse X: fitted as it is (the engine's sparse rows), never made dense.


def _hashed_text(n: int = 400, seed: int = 0):
    """A small hashed TF-IDF problem (3 classes, 2^10 columns)."""
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(500)])
    y = rng.integers(0, 3, n)
    docs = [" ".join(rng.choice(words[: 150 + 100 * c], 25)) + f" topic{c}" for c in y]
    hashed = HashingVectorizer(n_features=2**10, alternate_sign=False).transform(docs)
    return TfidfTransformer().fit_transform(hashed), y


_SPARSE_SOLVERS = {"lbfgs": {}, "saga": {"l1_ratio": 0.5}}
_SPARSE_KW = dict(C=5.0, class_weight="balanced", tol=1e-12, max_iter=5000)


@pytest.fixture(scope="module")
def dense_text_fits():
    """The dense fits of the hashed text, with sample weights, per solver."""
    X, y = _hashed_text()
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    fits = {
        solver: LogisticRegression(solver=solver, **extra, **_SPARSE_KW).fit(
            X.toarray(), y, sample_weight=w
        )
        for solver, extra in _SPARSE_SOLVERS.items()
    }
    return X, y, w, fits


@pytest.mark.parametrize(
    "fmt", ["csr_matrix", "csc_matrix", "coo_matrix", "csr_array", "coo_array"]
)
def test_sparse_x_gives_the_dense_fit(fmt, dense_text_fits):
    import scipy.sparse as sp

    X, y, w, dense_fits = dense_text_fits
    for solver, extra in _SPARSE_SOLVERS.items():
        sparse = LogisticRegression(solver=solver, **extra, **_SPARSE_KW)
        sparse.fit(getattr(sp, fmt)(X), y, sample_weight=w)
        dense = dense_fits[solver]
        np.testing.assert_allclose(sparse.coef_, dense.coef_, atol=1e-8)
        np.testing.assert_allclose(sparse.intercept_, dense.intercept_, atol=1e-8)
        if extra:  # the L1 optimum's zeros (L2: no zeros but unseen columns')
            np.testing.assert_array_equal(sparse.coef_ == 0, dense.coef_ == 0)


def test_sparse_text_reaches_scikit_learns_optimum_and_cv_choice():
    """scikit-learn's own lbfgs on the same sparse matrix, to tight tolerance:
    the same objective; LogisticRegressionCV chooses its C."""
    X, y = _hashed_text(600, seed=2)
    ref = sk.LogisticRegression(C=10.0, tol=1e-10, max_iter=10000).fit(X, y)
    ours = LogisticRegression(C=10.0, tol=1e-8, max_iter=1000).fit(X, y)
    f_ours = sk_objective(ours.coef_, ours.intercept_, X, y, 10.0)
    assert f_ours == pytest.approx(
        sk_objective(ref.coef_, ref.intercept_, X, y, 10.0), rel=1e-9
    )
    kw = dict(Cs=[0.1, 1.0, 10.0, 100.0], cv=3, l1_ratios=(0,), scoring="accuracy")
    kw |= dict(use_legacy_attributes=False, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cv_ref = sk.LogisticRegressionCV(**kw).fit(X, y)
    cv_ours = LogisticRegressionCV(**kw).fit(X, y)
    assert cv_ours.C_ == cv_ref.C_
    np.testing.assert_allclose(cv_ours.scores_, cv_ref.scores_, atol=0.02)
